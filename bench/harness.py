"""Load-test plumbing shared by the benchmarks: servers as subprocesses, wrk as the client.

The load comes from a separate process (wrk, C, one thread) on loopback, with request bodies
built by a Lua script before the run, so the client's own work is not what is measured. Every
target is measured in the same run with the same client settings, and results are printed and
written as JSON under bench/results/.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from callgate.embedded import free_port, port_answers

RESULTS = Path(__file__).parent / "results"


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its children still running (gateway --processes N)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


@dataclass(frozen=True)
class LoadResult:
    name: str
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    errors: int
    # Server CPU per request: robust when the machine is shared, unlike requests/s.
    server_cpu_us_per_request: float | None = None


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is needed as the load client: apt-get install wrk")
    return wrk


def start(cmd: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not port_answers("127.0.0.1", port, 0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{cmd[0]} did not start on port {port}")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    name: str,
    url: str,
    lua: str,
    *,
    seconds: int = 10,
    connections: int = 64,
    server_pid: int | list[int] | None = None,
    timeout_s: int = 2,
) -> LoadResult:
    """Drive `url` with wrk for `seconds`; `lua` builds each request (see wrk's scripting docs).
    `server_pid`: the server process (or processes) whose CPU per request is measured; `timeout_s`:
    wrk counts an answer slower than this as a timeout error, not a latency."""
    pids = [server_pid] if isinstance(server_pid, int) else server_pid or []
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    cmd = [require_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url]
    cmd[1:1] = ["--timeout", f"{timeout_s}s"]
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before if pids else None
    os.unlink(script.name)
    latency = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s))\s*$", out, re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return LoadResult(
        name=name,
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(latency["50"]),
        p90_ms=_ms(latency["90"]),
        p99_ms=_ms(latency["99"]),
        requests=requests,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        server_cpu_us_per_request=round(cpu / requests * 1e6, 1) if cpu is not None and requests else None,
    )


@contextlib.asynccontextmanager
async def private_database(admin_dsn: str, prefix: str) -> AsyncIterator[str]:
    """A database of this run's own (`{prefix}_{pid}`), dropped afterwards; yields its DSN."""
    name = f"{prefix}_{os.getpid()}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_dsn.rpartition('/')[0]}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def machine() -> dict[str, object]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def report(bench: str, results: list[LoadResult], extra: dict[str, object]) -> None:
    for r in results:
        print(
            f"{r.name:<28} {r.requests_per_s:>9.0f} req/s   p50 {r.p50_ms:6.2f} ms   p90 {r.p90_ms:6.2f} ms   "
            f"p99 {r.p99_ms:6.2f} ms   cpu/req {r.server_cpu_us_per_request or 0:6.1f} µs   "
            f"non-2xx {r.non_2xx}  errors {r.errors}"
        )
    for key, value in extra.items():
        print(f"{key}: {value}")
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "bench": bench,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "results": [asdict(r) for r in results],
        **extra,
    }
    (RESULTS / f"{bench}.json").write_text(json.dumps(payload, indent=2))


__all__ = ["LoadResult", "free_port", "private_database", "report", "run_wrk", "start", "stop"]


async def queue_depth(redis_url: str) -> int:
    """Jobs in arq's default queue (due or deferred) of the Redis at `redis_url`."""
    client = Redis.from_url(redis_url)
    try:
        return int(await client.zcard("arq:queue"))
    finally:
        await client.aclose()
