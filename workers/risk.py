"""Risk checks after an event is stored: measure, judge, record on the event, freeze if need be.

They run as their own job (`assess_risk`, one per event by job id) so a slow Redis or a long
deny list never holds up `store_event`, and every check is idempotent: velocity members are
per event, findings are unique per (event, check), and a freeze keeps its first reason.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from shared.jobs import ASSESS_RISK, key_hash
from shared.risk import facts as risk_facts
from shared.risk.checks import Finding, RiskConfig, judge
from shared.risk.facts import Facts
from shared.risk.freezes import Freeze, freeze
from shared.risk.velocity import Velocity
from workers.consumer import Retry
from workers.deps import JobCtx, WorkerDeps, deps
from workers.transient import POSTGRES_OR_REDIS as TRANSIENT
from workers.writer import Stored

logger = logging.getLogger(__name__)

CONFIG = "risk_config"  # ctx key a caller may preset (tests: a deny list, low limits)
MAX_TRIES = 20
RETRY_S = 5


@asynccontextmanager
async def risk_resources(ctx: JobCtx) -> AsyncIterator[None]:
    """Make the risk rules reachable from the follow-up (which gets deps, not ctx)."""
    d = deps(ctx)
    d.runtimes[CONFIG] = _config(ctx)
    try:
        yield
    finally:
        d.runtimes.pop(CONFIG, None)


def _config(ctx: JobCtx) -> RiskConfig:
    config = ctx.get(CONFIG) or deps(ctx).settings.risk
    assert isinstance(config, RiskConfig)
    return config


async def follow_event(d: WorkerDeps, stored: Stored) -> None:
    """Follow-up of every stored event: run the checks now, or enqueue them as a job.

    Inline in the `store_event` job when the worker opened its risk runtime (one job per event
    instead of two); every check is idempotent, so a re-run `store_event` is harmless.
    """
    event = stored.event
    f = risk_facts.facts(event)
    if f.wallet is None and f.counterparty is None and f.amount is None and f.kyt_level is None:
        return  # nothing any check could look at (a ping, a key-generation step)
    config = d.runtimes.get(CONFIG)
    if isinstance(config, RiskConfig):
        await assess(d, config, f)
        return
    job_id = f"risk:{event.provider}:{key_hash(event.provider, event.idempotency_key)}"
    await d.queue.enqueue(ASSESS_RISK, risk_facts.to_json(f), job_id=job_id)


async def assess_risk(ctx: JobCtx, facts: object) -> str:
    """Run every risk check on one event's facts; returns the checks it tripped, comma-separated."""
    try:
        findings = await assess(deps(ctx), _config(ctx), risk_facts.from_json(facts))
    except TRANSIENT as e:
        raise Retry(defer=RETRY_S) from e
    return ",".join(f.check for f in findings) or "clean"


async def assess(d: WorkerDeps, config: RiskConfig, f: Facts) -> list[Finding]:
    """The job without arq."""
    velocity = Velocity(d.redis, d.keys.namespace("risk:velocity"), run=d.scripts.run if d.scripts else None)
    event = f"{f.provider}:{f.idempotency_key}"
    summed = [limit.max_amount is not None for limit in config.velocity]
    measures = await velocity.add(
        _scopes(f), event=event, at=f.received_at, amount=f.amount, windows_s=config.windows_s, summed=summed
    )
    rejects = 0
    if f.rejected and f.wallet is not None:
        (m,) = await velocity.add(
            [f"rejects:{f.wallet}"], event=event, at=f.received_at, amount=None, windows_s=[config.reject_window_s]
        )
        rejects = m.count
    findings = judge(config, f, measures, rejects)
    for finding in findings:
        d.metrics.risk_findings.labels(finding.check, finding.severity).inc()
    if findings:
        await _record(d, f, findings)
    stop = next((x for x in findings if x.severity == "freeze"), None)
    if f.wallet is not None and stop is not None:
        await _freeze(d, Freeze(f.wallet, stop.check, stop.detail, event, f.received_at))
    return findings


async def _freeze(d: WorkerDeps, item: Freeze) -> None:
    if await freeze(d.redis, d.keys, item):
        d.metrics.risk_freezes.labels(item.reason).inc()
        logger.warning("wallet %s frozen: %s (%s)", item.wallet, item.reason, item.event)


def _scopes(f: Facts) -> list[str]:
    scopes = []
    if f.wallet is not None:
        scopes.append(f"wallet:{f.wallet}")
        if f.asset is not None:
            scopes.append(f"wallet_asset:{f.wallet}:{f.asset.upper()}")
    if f.counterparty is not None:
        scopes.append(f"counterparty:{f.counterparty}")
    return scopes


_RECORD = """
WITH found AS (
    INSERT INTO risk_findings (provider, idempotency_key, check_name, severity, detail, wallet)
    SELECT $1, $2, c, s, t, $6 FROM unnest($3::text[], $4::text[], $5::text[]) AS x(c, s, t)
    ON CONFLICT (provider, idempotency_key, check_name) DO NOTHING
)
UPDATE events SET status = 'flagged'
WHERE provider = $1 AND idempotency_key = $2 AND status = 'received'
"""


async def _record(d: WorkerDeps, f: Facts, findings: Sequence[Finding]) -> None:
    async with d.pool.acquire() as conn:
        await conn.execute(
            _RECORD,
            f.provider,
            f.idempotency_key,
            [x.check for x in findings],
            [x.severity for x in findings],
            [x.detail for x in findings],
            f.wallet,
        )
