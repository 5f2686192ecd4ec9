"""Overview, dead letters with replay (delivered by a real worker), subscribers, policies, TSS requests."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from shared.config import Settings
from shared.db import Pool, insert_events
from shared.keys import RedisKeys
from shared.notify import subscribers
from shared.policy import store as policy_store
from tests.conftest import RunWorker
from tests.console.conftest import Console, post_form
from tests.receiver import Receiver
from tests.shared.test_policy_replay import recorded
from tests.workers.notify_support import notify_env, store, wyre_event
from workers.deliver import deliver


@pytest.fixture
async def receiver(redis: Redis) -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def _dead_notification(db: Pool, settings: Settings, receiver: Receiver, name: str) -> str:
    """A notification killed the real way: the subscriber answered 410 (which also disables it)."""
    receiver.behave(name, status=410)
    async with db.acquire() as conn:
        await subscribers.add(conn, name, receiver.endpoint(name))
    await store(db, wyre_event())
    nid = str(
        await db.fetchval(
            "SELECT n.id FROM notifications n JOIN subscribers s ON s.id = n.subscriber_id WHERE s.name = $1", name
        )
    )
    async with notify_env(settings) as env:
        assert (await deliver(env.deps, env.runtime, nid, 1)).outcome == "gone"
    return nid


async def test_a_dead_notification_is_replayed_from_the_console_and_delivered(
    console: Console, db: Pool, settings: Settings, receiver: Receiver, run_worker: RunWorker
) -> None:
    nid = await _dead_notification(db, settings, receiver, "books")
    client = await console()
    page = await (await client.get("/dead-letters")).text()
    assert nid in page and "books" in page and "disabled: enable it before replaying" in page
    subs = await (await client.get("/subscribers")).text()
    assert "disabled" in subs and "Enable books" in subs and "whsec_" not in subs
    assert "Subscribers" in await post_form(client, "/subscribers", "/subscribers/enable", {"name": "books"})
    receiver.behave("books", status=200)
    done = await post_form(client, "/dead-letters", "/dead-letters/replay", {"one": nid})
    assert "Replayed 1 notification(s)." in done and "No open dead letters." in done
    await run_worker(settings)
    delivered = receiver.at("books")
    assert [r.webhook_id for r in delivered] == [nid, nid]  # the same webhook-id as the dead attempt
    assert await db.fetchval("SELECT status FROM notifications WHERE id = $1", nid) == "delivered"
    event_id = await db.fetchval("SELECT event_id FROM notifications WHERE id = $1", nid)
    detail = await (await client.get(f"/events/{event_id}")).text()
    assert "books: delivered" in detail and "gone" in detail  # both attempts are listed


async def test_replay_selected_and_all_of_a_subscriber(
    console: Console, db: Pool, settings: Settings, receiver: Receiver, redis: Redis
) -> None:
    first = await _dead_notification(db, settings, receiver, "one")
    second = await _dead_notification(db, settings, receiver, "two")
    client = await console()
    page = await (await client.get("/dead-letters", params={"subscriber": "two"})).text()
    assert second in page and first not in page
    done = await post_form(client, "/dead-letters?subscriber=two", "/dead-letters/replay", {"subscriber": "two"})
    assert "Replayed 1 notification(s)." in done
    assert await db.fetchval("SELECT status FROM notifications WHERE id = $1", second) == "pending"
    assert await db.fetchval("SELECT status FROM notifications WHERE id = $1", first) == "dead"
    done = await post_form(client, "/dead-letters", "/dead-letters/replay", {"id": first})
    assert "Replayed 1 notification(s)." in done
    assert await redis.zcard(settings.queue_name) == 2


async def test_disabling_a_subscriber(console: Console, db: Pool) -> None:
    async with db.acquire() as conn:
        await subscribers.add(conn, "ledger", "https://ledger.example/hook")
    client = await console()
    page = await post_form(client, "/subscribers", "/subscribers/disable", {"name": "ledger"})
    assert "ledger: disabled." in page and "disabled from the console" in page
    async with db.acquire() as conn:
        found = await subscribers.find(conn, "ledger")
    assert found is not None and not found.enabled
    page = await post_form(client, "/subscribers", "/subscribers/disable", {"name": "nobody"})
    assert "No subscriber named" in page


async def test_overview_counts_traffic_outcomes_queue_and_policies(
    console: Console, db: Pool, redis: Redis, settings: Settings
) -> None:
    await store(db, wyre_event(), wyre_event(), wyre_event(status="PENDING"))
    await db.execute("UPDATE events SET received_at = now() - interval '3 hours' WHERE kind = 'transaction.pending'")
    await db.execute(
        "INSERT INTO policies (document, source, sha256, published_by, state) VALUES"
        " ('{}', 'a: 1', 'x', 'alice', 'active'), ('{}', 'a: 2', 'y', 'bob', 'shadow')"
    )
    await redis.zadd(settings.queue_name, {"job-a": 1, "job-b": 2})
    client = await console()
    page = await (await client.get("/")).text()
    assert ">wyre</a></th><td>all</td><td>2</td><td>3</td>" in page.replace("\n", "")
    assert "Jobs queued (Redis)</dt><dd>2</dd>" in page
    assert "version 1</a>" in page and "version 2</a>" in page and ">active<" in page and ">shadow<" in page


async def test_policy_versions_with_a_diff(console: Console, db: Pool) -> None:
    await db.execute(
        "INSERT INTO policies (document, source, sha256, published_by, state) VALUES"
        " ('{}', 'limit: 1\nkeep: yes', 'a', 'alice', 'retired'), ('{}', 'limit: 2\nkeep: yes', 'b', 'bob', 'active')"
    )
    client = await console()
    page = await (await client.get("/policies", params={"diff": "2"})).text()
    assert '<span class="del">-limit: 1</span>' in page and '<span class="add">+limit: 2</span>' in page
    assert "keep: yes" in page and "Version 1 → 2" in page


async def test_tss_requests_show_reported_against_waas(console: Console, db: Pool) -> None:
    wallet = uuid.uuid4()
    await db.execute("INSERT INTO ucw_wallets (wallet_uuid, vault_id) VALUES ($1, 'vault-1')", wallet)
    for n, (reported, waas, disagree) in enumerate([(190, "Success", False), (190, "Failed", True)]):
        await db.execute(
            "INSERT INTO tss_requests (wallet_uuid, tss_request_id, vault_id, reported_status, first_reported_at,"
            " last_reported_at, waas_status, waas_terminal, disagreement, updated_at)"
            " VALUES ($1, $2, 'vault-1', $3, now(), now(), $4, true, $5, now() - $6 * interval '1 second')",
            wallet,
            f"tss-{n}",
            reported,
            waas,
            disagree,
            n,
        )
    client = await console()
    page = await (await client.get("/tss")).text()
    assert "tss-0" in page and "tss-1" in page and "Failed" in page
    only = await (await client.get("/tss", params={"disagreeing": "1"})).text()
    assert "tss-1" in only and "tss-0" not in only and "YES" in only
    paged = await console(login=True, page_size=1)
    first = await (await paged.get("/tss")).text()
    found = re.search(r'<a href="([^"]+)" rel="next">', first)
    assert found is not None and "tss-0" in first and "tss-1" not in first
    second = await (await paged.get(html.unescape(found.group(1)))).text()
    assert "tss-1" in second and "tss-0" not in second and 'rel="next"' not in second


async def test_a_policy_version_is_tested_on_recorded_decisions(
    console: Console, db: Pool, redis: Redis, settings: Settings
) -> None:
    async with db.acquire() as conn:
        await insert_events(conn, [recorded("small-1", "10", "APPROVE"), recorded("large-1", "5000", "APPROVE")])
    text = '{"rules": [{"id": "usdt", "kind": "amount_limit", "max_amount": "1000"}]}'
    published = await policy_store.publish(db, redis, RedisKeys(settings.key_prefix), text, published_by="test")
    client = await console()
    page = await (await client.get("/policies", params={"test": str(published.policy.version)})).text()
    assert "2 recorded decision requests" in page and "1 would be answered differently" in page
    assert "large-1" in page and "amount_over_limit" in page and "small-1" not in page
    assert "No version 99." in await (await client.get("/policies", params={"test": "99"})).text()
