"""The gateway's live state besides its connections: the policy snapshot, the order replica and,
with UCW enabled, the UCW wallet replica.

One cleanup context (after `_ingestor`): loaded at start, followed in the background, read by
handlers from memory (`request.app[POLICY].current`, `request.app[ORDERS].lookup(...)`,
`request.app[UCW_WALLETS].find(...)`). They share one small Postgres pool, used only off the
request path (loading a policy version, persisting order confirmations) and by the admin API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway.batched_reads import BatchedReads
from gateway.keys import METRICS, ORDERS, POLICY, REDIS, REDIS_KEYS, SETTINGS
from shared.db import Pool, create_pool
from shared.order_replica import OrderReplica
from shared.policy.holder import PolicyHolder
from shared.providers.cobo_ucw_replica import WalletReplica
from shared.risk.replica import FreezeReplica

DATABASE = web.AppKey("database", Pool)  # off the request path only: policy loads, admin API
UCW_WALLETS = web.AppKey("ucw_wallets", WalletReplica)
UCW_STATES = web.AppKey("ucw_states", BatchedReads)  # the UCW route's row replicas, one MGET per loop iteration
POLICY_POLL_S = 5.0
ORDERS_POLL_S = 0.5
FREEZES_POLL_S = 1.0
UCW_WALLETS_POLL_S = 0.5


async def live_state(app: web.Application) -> AsyncIterator[None]:
    # min_size=0: no connection is opened at start, so a database outage does not stop the
    # gateway (it answers fail-closed until a policy loads).
    pool = await create_pool(app[SETTINGS].database_url, min_size=0, max_size=3)
    holder = PolicyHolder(pool, app[REDIS], app[REDIS_KEYS], poll_interval_s=POLICY_POLL_S, metrics=app[METRICS])
    replica = OrderReplica(app[REDIS], app[REDIS_KEYS], pool=pool, poll_interval_s=ORDERS_POLL_S, metrics=app[METRICS])
    app[DATABASE] = pool
    # A source the embedder put in place already (a test's fixed snapshot) is left alone.
    freezes = FreezeReplica(app[REDIS], app[REDIS_KEYS], poll_interval_s=FREEZES_POLL_S)
    if POLICY not in app:
        await freezes.start()
        holder.attach_freezes(freezes)  # a risk check's freeze reaches the next decision
        await holder.start()
        app[POLICY] = holder
    if ORDERS not in app:
        await replica.start()
        app[ORDERS] = replica
    wallets = WalletReplica(app[REDIS], app[REDIS_KEYS], poll_interval_s=UCW_WALLETS_POLL_S)
    if app[SETTINGS].providers.cobo_ucw is not None:
        await wallets.start()
        app[UCW_WALLETS], app[UCW_STATES] = wallets, BatchedReads(app[REDIS])
    yield
    if UCW_STATES in app:
        await app[UCW_STATES].stop()
    await wallets.stop()
    await replica.stop()
    await holder.stop()
    await freezes.stop()
    await pool.close()
