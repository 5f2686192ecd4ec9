"""Each gateway process is its own scrape target, also under `callgate gateway --processes N`."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from gateway.keys import METRICS, SETTINGS
from gateway.process_metrics import SIDE_PORT, side_port
from shared.config import Settings
from shared.metrics import Metrics
from tests.deploy.manifests import ROOT


def _free_run(length: int) -> int:
    """A port p such that p … p+length-1 are all free right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + length >= 65536:
            continue
        try:
            for port in range(base, base + length):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no run of free ports")


def _healthz_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "callgate_request_duration_seconds_count" and sample.labels.get("route") == "healthz":
                return sample.value
    return 0.0


async def _get(url: str) -> tuple[int, str]:
    # A fresh connection per request: SO_REUSEPORT balances connections, not requests.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as response:
        return response.status, await response.text()


def _app(settings: Settings) -> web.Application:
    # Only what the side port needs: create_app's other resources are covered end to end below.
    app = web.Application()
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(side_port)
    return app


async def test_each_process_claims_its_own_side_port(settings: Settings) -> None:
    base = _free_run(3)
    runners = []
    try:
        for _ in range(2):
            runner = web.AppRunner(_app(dataclasses.replace(settings, host="127.0.0.1", port=base)))
            await runner.setup()
            runners.append(runner)
        assert [r.app[SIDE_PORT] for r in runners] == [base + 1, base + 2]
        runners[1].app[METRICS].redis_up.set(1)
        for runner in runners:
            status, body = await _get(f"http://127.0.0.1:{runner.app[SIDE_PORT]}/metrics")
            assert status == 200 and f"callgate_redis_up {float(runner is runners[1])}" in body
    finally:
        for runner in runners:
            await runner.cleanup()
    lone = web.AppRunner(_app(settings))  # port 0 (ephemeral): no side port
    await lone.setup()
    assert lone.app[SIDE_PORT] == 0
    await lone.cleanup()


async def _wait_for(url: str, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            if (await _get(url))[0] == 200:
                return
        except aiohttp.ClientError:
            if loop.time() > deadline:
                raise
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_processes_are_scraped_one_target_each(settings: Settings, tmp_path: Path) -> None:
    base = _free_run(3)
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": settings.database_url,
        "CALLGATE_HOST": "127.0.0.1",
        "CALLGATE_PORT": str(base),
        "CALLGATE_SPOOL_DIR": str(tmp_path / "spool"),
        "CALLGATE_LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callgate.cli", "gateway", "--processes", "2", env=env, cwd=ROOT, start_new_session=True
    )
    try:
        deadline = asyncio.get_running_loop().time() + 20
        for url in (f"{base}/metrics", f"{base + 1}/healthz", f"{base + 2}/healthz"):
            await _wait_for(f"http://127.0.0.1:{url}", deadline)
        for _ in range(40):
            assert (await _get(f"http://127.0.0.1:{base}/healthz"))[0] == 200
        counts = [_healthz_count((await _get(f"http://127.0.0.1:{p}/metrics"))[1]) for p in (base + 1, base + 2)]
        # Every request hit exactly one process and each side port shows one process only.
        assert sum(counts) == 40
    finally:
        # Graceful shutdown is tested elsewhere; here the processes only have to go away.
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=30)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
