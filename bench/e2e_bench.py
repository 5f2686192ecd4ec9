"""End to end: callback received → notification delivered, and worker throughput per process.

`python -m bench.e2e_bench [--rates 100,500] [--seconds 10] [--events 5000] [--poll-delay 0.02]`

Real processes on this machine: a private valkey-server (AOF everysec), a fresh database on the
local PostgreSQL, one gateway process and one worker process (`callgate gateway|worker`). This
process sends Wyre callbacks at a steady rate (open loop: a late answer does not slow the next
send) and runs the subscriber's receiver, so both ends of each latency use one clock.

1. steady rate: p50/p99 from sending the callback to its signed notification arriving.
2. worker throughput: callbacks queued with no worker running, then one worker started; events/s
   is stored events over the time to drain them, first with no subscriber (store + risk checks),
   then with one (store + risk + delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from bench.harness import RESULTS, cpu_seconds, free_port, machine, queue_depth, start, stop
from callgate.embedded import EmbeddedRedis
from shared.config import Settings
from shared.db import migrate
from shared.logging import configure
from shared.notify import subscribers
from workers.settings import build_worker

TOKEN = "bench-path-token-0123456789"
PG_ADMIN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _body(tx: str) -> bytes:
    # A thousand wallets and counterparties: one hot wallet would trip the velocity checks on
    # every event and measure the findings path instead of the common one.
    n = int(tx.rsplit("_", 1)[1]) % 1000 if tx.rsplit("_", 1)[1].isdigit() else 0
    return orjson.dumps(
        {
            "createdAt": 1613027293110,
            "id": tx,
            "source": f"bitcoin:EXTERNAL{n:04d}",
            "dest": f"wallet:WA_{n:08d}",
            "currency": "BTC",
            "amount": 0.01653538,
            "status": "CONFIRMED",
            "confirmedAt": 1613027293110,
        }
    )


class Receiver:
    """The subscriber: notes when each transaction's notification arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrived.setdefault(orjson.loads(body)["data"]["ids"]["id"], time.perf_counter())
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def _send(session: aiohttp.ClientSession, url: str, tx: str, sent: dict[str, float]) -> None:
    sent[tx] = time.perf_counter()
    async with session.post(url, data=_body(tx), headers={"Content-Type": "application/json"}) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"gateway answered {response.status}")


async def steady(url: str, receiver: Receiver, *, rate: int, seconds: int) -> dict[str, float]:
    """Send at `rate`/s for `seconds`, then wait for every notification; latency percentiles (ms)."""
    sent: dict[str, float] = {}
    run = secrets.token_hex(3)
    tasks = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        t0 = time.perf_counter()
        for i in range(rate * seconds):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(session, url, f"TR_{run}_{i}", sent)))
        await asyncio.gather(*tasks)
        send_s = time.perf_counter() - t0
    await _wait(lambda: all(tx in receiver.arrived for tx in sent), 120)
    latencies = sorted((receiver.arrived[tx] - sent[tx]) * 1000 for tx in sent)
    return {
        "rate_per_s": rate,
        "achieved_send_rate_per_s": round(len(sent) / send_s, 1),
        "callbacks": len(sent),
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p90_ms": round(latencies[int(len(latencies) * 0.9)], 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 1),
        "max_ms": round(latencies[-1], 1),
    }


async def _wait(condition: object, timeout_s: float) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the pipeline to drain")
        await asyncio.sleep(0.01)


async def _count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def drain(url: str, dsn: str, worker_cmd: list[str], env: dict[str, str], *, events: int) -> dict[str, float]:
    """Queue `events` callbacks with no worker, then time one worker process draining them.

    Besides wall-clock rates, the worker's own CPU per event: on a shared machine that is the
    figure that says what one worker process does with a core to itself.
    """
    redis_url = env["REDIS_URL"]
    before = await _count(dsn, "SELECT count(*) FROM events")
    run = secrets.token_hex(3)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        for start_i in range(0, events, 200):
            batch = range(start_i, min(events, start_i + 200))
            await asyncio.gather(*(_send(session, url, f"TR_{run}_{i}", {}) for i in batch))
    worker = _spawn(worker_cmd, env)
    await asyncio.sleep(1.0)  # start-up (imports, pools) is not throughput
    t0, cpu0 = time.perf_counter(), cpu_seconds(worker.pid)
    try:
        await _until(lambda: _count(dsn, "SELECT count(*) FROM events"), before + events)
        stored_s = time.perf_counter() - t0
        # Done: every job gone from the queue (risk checks, deliveries) and nothing pending.
        await _until(lambda: queue_depth(redis_url), 0)
        await _until(lambda: _count(dsn, "SELECT count(*) FROM notifications WHERE status = 'pending'"), 0)
        done_s, cpu = time.perf_counter() - t0, cpu_seconds(worker.pid) - cpu0
    finally:
        stop(worker)
    return {
        "events": events,
        "stored_per_s": round(events / stored_s, 1),
        "all_jobs_done_per_s": round(events / done_s, 1),
        "worker_cpu_ms_per_event": round(cpu / events * 1000, 2),
        "events_per_worker_cpu_second": round(events / cpu, 1),
    }


def _spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL)


async def _until(measure: Callable[[], Awaitable[int]], target: int, *, timeout_s: float = 600) -> None:
    """Poll until `measure()` reaches `target` (counts only move towards it)."""
    deadline = time.monotonic() + timeout_s
    for _ in itertools.count():
        value = await measure()
        if value == target or (target > 0 and value >= target):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out at {value}, waiting for {target}")
        await asyncio.sleep(0.05)


def serve_worker(poll_delay_s: float) -> None:
    """`--serve-worker`: one worker process like `callgate worker`, with a chosen poll delay."""
    settings = Settings.from_env()
    configure(settings.log_level, json=False)

    async def run() -> None:
        worker = build_worker(settings, poll_delay=poll_delay_s, handle_signals=True)
        try:
            await worker.main()
        finally:
            await worker.close()

    asyncio.run(run())


async def run(args: argparse.Namespace) -> dict[str, object]:
    data = Path(tempfile.mkdtemp(prefix="callgate-e2e-"))
    redis = EmbeddedRedis(data / "redis").start()
    name = f"callgate_bench_{secrets.token_hex(3)}"
    dsn = f"{PG_ADMIN.rpartition('/')[0]}/{name}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    receiver = Receiver()
    await receiver.start()
    port = free_port()
    env = {
        "REDIS_URL": redis.url,
        "DATABASE_URL": dsn,
        "CALLGATE_PORT": str(port),
        "CALLGATE_WORKER_METRICS_PORT": str(free_port()),
        "CALLGATE_WYRE_PATH_TOKEN": TOKEN,
        "CALLGATE_SPOOL_DIR": str(data / "spool"),
        "CALLGATE_LOG_LEVEL": "WARNING",
    }
    gateway = start([sys.executable, "-m", "callgate.cli", "gateway"], port, env)
    worker_cmd = [sys.executable, "-m", "callgate.cli", "worker"]
    if args.poll_delay is not None:
        worker_cmd = [sys.executable, "-m", "bench.e2e_bench", "--serve-worker", "--poll-delay", str(args.poll_delay)]
    url = f"http://127.0.0.1:{port}/wyre/v3/wallet-callbacks/{TOKEN}"
    out: dict[str, object] = {}
    try:
        out["worker_no_subscriber"] = await drain(url, dsn, worker_cmd, env, events=args.events)
        await subscribers.add(conn, "bench", f"http://127.0.0.1:{receiver.port}/hook")
        out["worker_one_subscriber"] = await drain(url, dsn, worker_cmd, env, events=args.events)
        worker = _spawn(worker_cmd, env)
        try:
            await asyncio.sleep(1.0)
            await steady(url, receiver, rate=min(args.rates), seconds=2)  # warm-up
            for rate in args.rates:
                out[f"steady_{rate}_per_s"] = await steady(url, receiver, rate=rate, seconds=args.seconds)
        finally:
            stop(worker)
    finally:
        stop(gateway)
        await receiver.stop()
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        redis.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--rates", type=lambda v: [int(x) for x in v.split(",")], default=[100, 500], help="steady rates, e.g. 100,500"
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--events", type=int, default=5000, help="callbacks queued for the throughput phase")
    parser.add_argument(
        "--poll-delay",
        type=float,
        default=None,
        help="worker poll delay (default: the settings', CALLGATE_WORKER_POLL_DELAY_SECONDS)",
    )
    parser.add_argument("--serve-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_worker:
        serve_worker(args.poll_delay if args.poll_delay is not None else Settings.from_env().worker_poll_delay_seconds)
        return
    out = asyncio.run(run(args))
    for phase, figures in out.items():
        print(f"{phase}: {figures}")
    RESULTS.mkdir(exist_ok=True)
    default_poll = Settings.from_env().worker_poll_delay_seconds
    out["worker_poll_delay_s"] = args.poll_delay if args.poll_delay is not None else default_poll
    payload = {"bench": "e2e", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **out}
    (RESULTS / "e2e.json").write_text(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
