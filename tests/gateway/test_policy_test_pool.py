"""`POST /admin/policy/test` decides in a helper process: the gateway's loop keeps answering while a
large window is replayed, a second test waits for the first, a window over the bound is refused."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from gateway.policy_test_pool import POLICY_TESTS, PolicyTests
from shared.config import Settings
from shared.db import Pool, insert_events
from shared.errors import PolicyError
from shared.policy.replay import WindowTooLarge
from tests.gateway.test_admin_policy import admin_settings, call
from tests.gateway.test_policy_shadow import Client
from tests.shared.test_policy_replay import recorded
from tests.shared.test_policy_store import until

Gateway = Callable[[Settings], Awaitable[Client]]
# Recorded: APPROVE for 5000 USDT; this candidate rejects every one of them.
CANDIDATE = '{"rules": [{"id": "usdt", "kind": "amount_limit", "max_amount": "1000"}]}'
LARGE = 60_000  # seconds of deciding on one core, far more than the loop's work on the same rows


async def record(db: Pool, count: int) -> None:
    """`count` recorded decisions: one inserted with the request in its payload (as Cobo TSS once
    recorded it), copies of it with the request in the decision (as now; and no payload, which
    the console's id index would walk), made in SQL."""
    async with db.acquire() as conn:
        await insert_events(conn, [recorded("seed", "5000", "APPROVE")])
        await conn.execute(
            "INSERT INTO events (provider, kind, idempotency_key, request_id, raw_body, decision, received_at)"
            " SELECT provider, kind, idempotency_key || '-' || n, request_id, raw_body,"
            "        decision || jsonb_build_object('request', payload->'request'), received_at"
            " FROM events, generate_series(2, $1) AS n WHERE idempotency_key = 'seed'",
            count,
        )


def helpers() -> dict[int, float]:
    """This process's policy-test helpers (spawned by multiprocessing): pid -> CPU seconds used."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[1]) == os.getpid() and b"spawn_main" in command:
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


@pytest.mark.slow
async def test_the_loop_answers_while_a_large_window_is_decided_in_the_helper(
    gateway: Gateway, settings: Settings, db: Pool
) -> None:
    await record(db, LARGE)
    client = await gateway(admin_settings(settings))
    tests = client.app[POLICY_TESTS]
    loop_cpu = time.thread_time()
    replay = asyncio.create_task(call(client, "POST", "/admin/policy/test", CANDIDATE, since="1h"))
    await until(lambda: tests.in_line == 1, within_s=10)
    for _ in range(20):  # spread over the helper's start and its deciding, each answered meanwhile
        assert (await client.get("/healthz")).status == 200
        assert not replay.done()
        await asyncio.sleep(0.05)
    status, report = await replay
    loop_cpu = time.thread_time() - loop_cpu
    assert (status, report["requests"], report["changed"], report["by_reason"]) == (
        200,
        LARGE,
        LARGE,
        {"amount_over_limit": LARGE},
    )
    assert len(report["changes"]) == 1000  # kept in full; all counted
    # The decisions were made in the helper process: it used more CPU than this thread (the
    # gateway's loop, the test client and the database driver together) did meanwhile.
    ((helper, helper_cpu),) = helpers().items()
    assert helper_cpu > loop_cpu
    await client.close()  # the app's cleanup shuts the helper down
    with pytest.raises(ProcessLookupError):  # ended and reaped
        os.kill(helper, 0)


async def test_a_second_policy_test_waits_for_the_one_running(gateway: Gateway, settings: Settings, db: Pool) -> None:
    await record(db, 10_000)
    client = await gateway(admin_settings(settings))
    tests = client.app[POLICY_TESTS]
    # It changes nothing: a short answer, read by the client at once.
    first = asyncio.create_task(call(client, "POST", "/admin/policy/test", CANDIDATE.replace("1000", "10000")))
    await until(lambda: tests.in_line == 1, within_s=10)
    # Nothing to decide for this one: it would be answered at once if it did not wait.
    second = asyncio.create_task(call(client, "POST", "/admin/policy/test", CANDIDATE, provider="uuwallet"))
    await until(lambda: tests.in_line == 2, within_s=10)
    assert not first.done()
    done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {first}
    status, report = await first
    assert (status, report["requests"], report["changed"]) == (200, 10_000, 0)
    status, report = await second
    assert (status, report["requests"], report["changed"]) == (200, 0, 0)
    refused = await call(client, "POST", "/admin/policy/test", '{"rules": [{"id": "l", "kind": "amount_limit"}]}')
    assert refused[0] == 422 and refused[1]["detail"].startswith("rules[0]")
    assert tests.in_line == 0


async def test_a_window_over_the_bound_is_refused_before_any_decision(db: Pool) -> None:
    await record(db, 5)
    tests = PolicyTests(max_requests=4)
    try:
        with pytest.raises(WindowTooLarge):
            await tests.run(db, CANDIDATE, since=time.time() - 60)
        with pytest.raises(PolicyError) as refused:
            await tests.run(db, "rules: 3", since=time.time() - 60)
        assert refused.value.path == "rules"
        # The same helper, nothing left over from the refused ones.
        assert (await tests.run(db, CANDIDATE, since=time.time() - 60, providers=["wyre"])).requests == 0
        tests.max_requests = 5
        report = await tests.run(db, CANDIDATE, since=time.time() - 60)
        assert (report.requests, report.changed, len(helpers())) == (5, 5, 1)
    finally:
        await tests.close()
    assert helpers() == {}


async def test_a_helper_that_dies_fails_its_test_and_the_next_test_gets_a_new_one(db: Pool) -> None:
    await record(db, 20_000)
    tests = PolicyTests()
    try:
        running = asyncio.create_task(tests.run(db, CANDIDATE, since=time.time() - 60))
        await until(lambda: len(helpers()) == 1, within_s=10)
        (killed,) = helpers()
        os.kill(killed, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await running
        report = await tests.run(db, CANDIDATE, since=time.time() - 60)
        assert (report.requests, report.changed) == (20_000, 20_000)
        assert list(helpers()) != [killed] and len(helpers()) == 1
    finally:
        await tests.close()
