"""Cobo TSS Node callback benchmark: `python -m bench.cobo_tss_bench [sign|route|all]`.

Part 1 (`sign`): the machine's pure RS256 signing rate with our `sign_rs256` (complete answer
tokens), on one core and on every core, for 2048- and 4096-bit keys: the ceiling of any route
that signs each answer.

Part 2 (`route`): `POST /cobo/tss-node/v2/check` through real gateway processes (1, then 2, with
SO_REUSEPORT) against a private valkey-server with AOF everysec, no worker. The load is wrk in a
separate process on loopback, replaying pre-signed node tokens of EVM key-sign requests, each
with its own request_id (so every request is verified, parsed, hash-checked, decided, memoised
with its audit job in Redis, and answered with a fresh signature). Throughput is reported as a
ratio to the pure signing rate of as many cores as there are gateway processes. The client
shares the machine's cores, which the ratio does not forgive.

Results are printed and written to bench/results/cobo_tss_sign.json and cobo_tss_route.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio import Redis

from bench.harness import LoadResult, free_port, run_wrk, start, stop
from callgate.embedded import EmbeddedRedis
from shared.db import create_pool, migrate
from shared.keys import RedisKeys
from shared.policy.model import Action
from shared.policy.store import publish
from shared.providers import cobo_tss_samples as samples
from shared.providers.cobo_jwt import sign_rs256
from shared.providers.cobo_tss import CoboTssResponse, ResponseStatus, response_claims

RESULTS = Path(__file__).parent / "results"
BITS = (2048, 4096)
PROCESSES = (1, 2)
# (gateway processes, answers signed in the thread pool)
VARIANTS = ((1, False), (1, True), (2, False))
CHECK = "/cobo/tss-node/v2/check"
POSTGRES_ADMIN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Approves the sample key-sign requests: every request runs the whole rule set, not the
# no-policy short cut.
POLICY = {
    "rules": [
        {"id": "ks", "kind": "tss", "match": {"provider": "cobo_tss", "operation": "keysign"},
         "signature_types": ["ECDSA"], "protocols": ["LINDELL"]},
        {"id": "eth", "kind": "amount_limit", "match": {"provider": "cobo_tss", "chain": "ETH", "asset": "ETH"},
         "max_amount": "10"},
    ],
    "defaults": {"cobo_tss": "REJECT"},
}  # fmt: skip

LUA = r"""
local tokens = {}
for line in io.lines("%s") do tokens[#tokens + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
request = function()
  i = i + 1
  return wrk.format(nil, nil, nil, "TSS_JWT_MSG=" .. tokens[((i - 1) %% #tokens) + 1])
end
"""


# -- part 1: the pure signing rate -----------------------------------------------------------


def signing_rate(key: rsa.RSAPrivateKey, seconds: float) -> dict[str, float]:
    """Sign complete answer tokens back to back on this core for `seconds`; return rate and mean."""
    response = CoboTssResponse("bench-request", ResponseStatus.OK, Action.APPROVE)
    count = 0
    start, cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        sign_rs256(response_claims(response, issuer="callgate", ttl_minutes=2, now=time.time()), key)
        count += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"tokens": count, "per_second": count / elapsed, "cpu_ms": 1000 * cpu / count}


def _rate_from_pem(pem: bytes, seconds: float) -> dict[str, float]:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signing_rate(key, min(0.5, seconds))  # warm-up
    return signing_rate(key, seconds)


def machine_rate(pem: bytes, processes: int, seconds: float) -> tuple[float, float]:
    """Signatures per second with `processes` signing at once (one per core), and CPU ms per signature."""
    with ProcessPoolExecutor(processes) as pool:
        runs = list(pool.map(_rate_from_pem, [pem] * processes, [seconds] * processes))
    return sum(r["per_second"] for r in runs), sum(r["cpu_ms"] for r in runs) / len(runs)


def run_sign(keys: dict[int, bytes], seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for bits, pem in keys.items():
        rates = {p: machine_rate(pem, p, seconds) for p in PROCESSES}
        cpu_ms = rates[1][1]
        results[str(bits)] = {f"{p}_proc_per_second": rate for p, (rate, _) in rates.items()} | {"cpu_ms": cpu_ms}
        line = "   ".join(f"{p} proc {rate:8.1f}/s" for p, (rate, _) in rates.items())
        print(f"RSA-{bits} pure signing: {line}   ({cpu_ms:.3f} CPU ms per signature)")
    return results


# -- part 2: the check route ----------------------------------------------------------------


def _sign_batch(pem: bytes, prefix: str, start: int, count: int) -> list[str]:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return [
        samples.request_token(samples.keysign(f"{prefix}-{i}"), key, ttl_s=3600) for i in range(start, start + count)
    ]


def presign(pem: bytes, prefix: str, count: int) -> list[str]:
    """`count` node tokens of distinct key-sign requests, signed on every core."""
    workers = os.cpu_count() or 1
    share = -(-count // workers)
    with ProcessPoolExecutor(workers) as pool:
        batches = pool.map(_sign_batch, [pem] * workers, [prefix] * workers, range(0, count, share), [share] * workers)
    return [token for batch in batches for token in batch]


def _check_answer(url: str, token: str, our_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    body = ("TSS_JWT_MSG=" + token).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 (a loopback URL we built)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return samples.read_response(response.read().decode(), our_key.public_key())


def _pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


async def _database(name: str, redis_url: str) -> str:
    """A fresh database with the schema and the bench policy published; returns its URL."""
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = POSTGRES_ADMIN.rpartition("/")[0] + "/" + name
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    pool, redis = await create_pool(url, max_size=1), Redis.from_url(redis_url)
    await publish(pool, redis, RedisKeys(), orjson.dumps(POLICY).decode(), published_by="bench")
    await pool.close()
    await redis.aclose()
    return url


async def _drop_database(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def run_route(keys: dict[int, bytes], sign: dict[str, Any], seconds: int, connections: int) -> list[dict[str, Any]]:
    data = Path(tempfile.mkdtemp(prefix="callgate-cobo-bench-"))
    redis = EmbeddedRedis(data / "redis").start()
    database = f"callgate_bench_{os.getpid()}"
    database_url = asyncio.run(_database(database, redis.url))
    rows: list[dict[str, Any]] = []
    try:
        for bits, pem in keys.items():
            node = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            (data / f"node-{bits}.pub").write_bytes(_pem_public(node))
            (data / f"ours-{bits}.pem").write_bytes(pem)
            # Enough distinct requests for the fastest run (2 processes) plus its warm-up.
            count = int(sign[str(bits)][f"{max(PROCESSES)}_proc_per_second"] * (seconds + 3) * 1.2)
            tokens = presign(_pem_private(node), f"b{bits}", count)
            (data / f"tokens-{bits}.txt").write_text("\n".join(tokens) + "\n")
            for processes, threaded in VARIANTS:
                run = _route_run(bits, processes, threaded, data, redis, database_url, seconds, connections)
                rows.append(_row(*run, bits, processes, threaded, sign[str(bits)], len(tokens)))
    finally:
        redis.stop()
        asyncio.run(_drop_database(database))
    return rows


def _route_run(
    bits: int,
    processes: int,
    threaded: bool,
    data: Path,
    redis: EmbeddedRedis,
    database_url: str,
    seconds: int,
    connections: int,
) -> tuple[LoadResult, float]:
    _forget_decisions(redis.url)  # every token is a first request again
    port = free_port()
    env = {
        "REDIS_URL": redis.url,
        "DATABASE_URL": database_url,
        "CALLGATE_PORT": str(port),
        "CALLGATE_SPOOL_DIR": str(data / "spool"),
        "CALLGATE_LOG_LEVEL": "WARNING",
        "CALLGATE_COBO_TSS_NODE_PUBLIC_KEY_FILE": str(data / f"node-{bits}.pub"),
        "CALLGATE_COBO_TSS_PRIVATE_KEY_FILE": str(data / f"ours-{bits}.pem"),
        "CALLGATE_COBO_TSS_SIGN_IN_THREAD": "true" if threaded else "false",
    }
    cmd = [sys.executable, "-m", "callgate.cli", "gateway", "--processes", "1", "--reuse-port"]
    # One process per gateway, each our own child (SO_REUSEPORT shares the port), so that the
    # CPU each one spends is readable and every one of them is stopped.
    gateways = [start(cmd, port, env)]
    gateways += [
        subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL) for _ in range(processes - 1)
    ]
    url = f"http://127.0.0.1:{port}{CHECK}"
    lua = LUA % (data / f"tokens-{bits}.txt")
    try:
        _probe(url, bits, processes, data)
        # A warm-up too short to report latencies (an overloaded machine) still warmed up.
        with contextlib.suppress(KeyError, AttributeError):
            run_wrk("warmup", url, lua, seconds=2, connections=connections)
        name = f"check RSA-{bits} {processes} proc" + (" thread" if threaded else "")
        for attempt in range(3):  # wrk omits percentiles when an overloaded run completes too little
            cpu = _cpu_seconds(gateways)
            try:
                result = run_wrk(name, url, lua, seconds=seconds, connections=connections)
            except (KeyError, AttributeError):
                if attempt == 2:
                    raise
                continue
            return result, _cpu_seconds(gateways) - cpu
        raise AssertionError("unreachable")
    finally:
        for gateway in gateways:
            stop(gateway)


def _probe(url: str, bits: int, processes: int, data: Path) -> None:
    ours = serialization.load_pem_private_key((data / f"ours-{bits}.pem").read_bytes(), password=None)
    assert isinstance(ours, rsa.RSAPrivateKey)
    probe = (data / f"tokens-{bits}.txt").read_text().splitlines()[-1]
    answer = _check_answer(url, probe, ours)
    print(f"RSA-{bits}, {processes} proc: probe answer {answer['status']} {answer['action']} {answer['error'][:60]}")


def _cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU time the processes have used so far (Linux /proc)."""
    total = 0
    for proc in processes:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _forget_decisions(redis_url: str) -> None:
    """Drop the decision memos and queued audit jobs of the previous run (the policy stays)."""
    import redis as redis_sync

    client = redis_sync.Redis.from_url(redis_url)
    for pattern in ("callgate:memo:*", "arq:*"):
        for key in client.scan_iter(pattern, count=1000):
            client.delete(key)
    client.close()


def _row(
    result: LoadResult, cpu: float, bits: int, processes: int, threaded: bool, sign: dict[str, float], tokens: int
) -> dict[str, Any]:
    machine = sign[f"{processes}_proc_per_second"]
    ratio = result.requests_per_s / machine
    cpu_ms = 1000 * cpu / max(result.requests, 1)
    # Signing's share of the route's CPU: the throughput ratio a machine with cores to spare
    # for the client would show; unlike the wall-clock ratio it does not move with other load.
    cpu_ratio = sign["cpu_ms"] / cpu_ms
    print(
        f"{result.name:<31} {result.requests_per_s:8.1f} req/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f}"
        f"  pure signing {machine:8.1f}/s  ratio {ratio:5.1%}  CPU {cpu_ms:.3f} ms/request (signing {cpu_ratio:5.1%})"
    )
    return {**result.__dict__, "bits": bits, "processes": processes, "sign_in_thread": threaded,
            "pure_signing_per_second": machine,
            "ratio_to_pure_signing": round(ratio, 3), "cpu_ms_per_request": round(cpu_ms, 4),
            "cpu_ms_per_signature": round(sign["cpu_ms"], 4), "signing_share_of_cpu": round(cpu_ratio, 3),
            "distinct_tokens": tokens}  # fmt: skip


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "at": time.time(),
        "load_average_1m": os.getloadavg()[0],  # other work on the machine skews every figure
    }
    path = RESULTS / f"cobo_tss_{name}.json"
    path.write_text(json.dumps({"meta": meta, **payload}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["sign", "route", "all"], nargs="?", default="all")
    parser.add_argument("--sign-seconds", type=float, default=3.0)
    parser.add_argument("--seconds", type=int, default=10, help="wrk run length per route measurement")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    keys = {bits: _pem_private(rsa.generate_private_key(public_exponent=65537, key_size=bits)) for bits in BITS}
    sign = run_sign(keys, args.sign_seconds)
    write_results("sign", {"sign": sign})
    if args.part in ("route", "all"):
        rows = run_route(keys, sign, args.seconds, args.connections)
        write_results("route", {"sign": sign, "route": rows, "goal": "ratio_to_pure_signing >= 0.85"})


if __name__ == "__main__":
    main()
