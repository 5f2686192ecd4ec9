"""Promote and rollback seen by two real gateway processes (`callgate gateway --processes 2`)
within a second, each read from its own side port's `callgate_policy_version`."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from shared.config import Settings
from shared.db import Pool
from shared.keys import RedisKeys
from shared.policy.store import promote, publish, rollback
from shared.providers import chainup_samples as samples
from tests.deploy.manifests import ROOT
from tests.deploy.test_process_metrics import _free_run, _get, _wait_for
from tests.gateway.test_policy_shadow import ACTIVE, STRICTER, TOKEN


def _version(text: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "callgate_policy_version":
                return sample.value
    return None


async def _versions(ports: list[int]) -> list[float | None]:
    return [_version((await _get(f"http://127.0.0.1:{port}/metrics"))[1]) for port in ports]


async def _seen_by_both(ports: list[int], version: int) -> float:
    started = time.monotonic()
    while await _versions(ports) != [version, version]:
        assert time.monotonic() - started < 1.0, f"version {version} not seen by both processes within a second"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def _ask(base: int, request_id: str, amount: str) -> str:
    body = samples.cosigner_body(samples.COSIGNER_WITHDRAW, request_id=request_id, amount=amount)
    connector = aiohttp.TCPConnector(force_close=True)  # SO_REUSEPORT balances connections
    async with aiohttp.ClientSession(connector=connector) as session:
        url = f"http://127.0.0.1:{base}/chainup/cosigner/withdraw"
        async with session.post(url, data=body, headers={"X-Callgate-Token": TOKEN}) as response:
            return await response.text()


@pytest.mark.slow
async def test_promote_and_rollback_reach_two_gateway_processes_within_a_second(
    settings: Settings, db: Pool, redis: Redis, tmp_path: Path
) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    keys = RedisKeys(prefix)
    await publish(db, redis, keys, ACTIVE, published_by="test")
    base = _free_run(3)
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": settings.database_url,
        "CALLGATE_KEY_PREFIX": prefix,
        "CALLGATE_HOST": "127.0.0.1",
        "CALLGATE_PORT": str(base),
        "CALLGATE_SPOOL_DIR": str(tmp_path / "spool"),
        "CALLGATE_LOG_LEVEL": "WARNING",
        "CALLGATE_CHAINUP_COSIGNER_TOKEN": TOKEN,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callgate.cli", "gateway", "--processes", "2", env=env, cwd=ROOT, start_new_session=True
    )
    sides = [base + 1, base + 2]
    try:
        deadline = asyncio.get_running_loop().time() + 30
        for port in sides:
            await _wait_for(f"http://127.0.0.1:{port}/healthz", deadline)
        while await _versions(sides) != [1, 1]:  # loaded at start-up
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        assert {await _ask(base, f"p-{i}", "600") for i in range(4)} == {"SUCCESS"}
        await publish(db, redis, keys, STRICTER, published_by="test", shadow=True)
        assert (await promote(db, redis, keys, published_by="test")).policy.version == 3
        await _seen_by_both(sides, 3)
        assert {await _ask(base, f"q-{i}", "600") for i in range(4)} == {"FAILURE"}
        assert (await rollback(db, redis, keys, published_by="test")).policy.version == 4
        await _seen_by_both(sides, 4)
        assert {await _ask(base, f"r-{i}", "600") for i in range(4)} == {"SUCCESS"}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=30)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
