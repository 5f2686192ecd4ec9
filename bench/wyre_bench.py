"""Wyre route vs bare aiohttp, same client, same run: `python -m bench.wyre_bench [--seconds N]`.

The gateway runs against a private valkey-server with AOF everysec (production durability), no
worker (so the measured cost is the ack path alone); each request carries a unique transaction
id, so every one is accepted and enqueued (no duplicate short-cuts).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench.harness import free_port, report, run_wrk, start, stop
from callgate.embedded import EmbeddedRedis

TOKEN = "bench-path-token-0123456789"

LUA = r"""
local counter = 0
local template = '{"createdAt":1613027293110,"id":"TR_%d_%d","source":"bitcoin:EXTERNAL",' ..
  '"dest":"wallet:WA_8AFWHMHLYXH","currency":"BTC","amount":0.01653538,"status":"CONFIRMED",' ..
  '"confirmedAt":1613027293110,"cancelledAt":null,"reversedAt":null,"message":null,"allowOverdraft":true,' ..
  '"authorizer":null,"senderProvidedId":null,"reversedBy":null,"fees":0,"feesDest":null,' ..
  '"metadata":{"BTCNetworkTxId":"9689d7c675b05f71629696ea9b25c2d61f52406598a4bef759f782c2c35d4f0c"},' ..
  '"tags":[],"destFees":null,"sourceFees":null}'
local run = math.random(1, 1000000000)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, string.format(template, run, counter))
end
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--processes", type=int, default=1, help="gateway processes (SO_REUSEPORT)")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="callgate-bench-"))
    redis = EmbeddedRedis(data / "redis").start()
    hello_port, gateway_port = free_port(), free_port()
    hello = start([sys.executable, "-m", "bench.hello_server", str(hello_port)], hello_port)
    env = {
        "REDIS_URL": redis.url,
        "CALLGATE_PORT": str(gateway_port),
        "CALLGATE_WYRE_PATH_TOKEN": TOKEN,
        "CALLGATE_SPOOL_DIR": str(data / "spool"),
        "CALLGATE_LOG_LEVEL": "WARNING",
    }
    gateway = start(
        [sys.executable, "-m", "callgate.cli", "gateway", "--processes", str(args.processes)], gateway_port, env
    )
    try:
        url = f"http://127.0.0.1:{{}}/wyre/v3/wallet-callbacks/{TOKEN}"
        # Warm both up (JIT-free Python still has caches, connection pools, Lua script load).
        run_wrk("warmup", url.format(hello_port), LUA, seconds=2, connections=args.connections)
        run_wrk("warmup", url.format(gateway_port), LUA, seconds=2, connections=args.connections)
        bare = run_wrk(
            "bare aiohttp hello",
            url.format(hello_port),
            LUA,
            seconds=args.seconds,
            connections=args.connections,
            server_pid=hello.pid,
        )
        wyre = run_wrk(
            f"wyre route ({args.processes} proc)",
            url.format(gateway_port),
            LUA,
            seconds=args.seconds,
            connections=args.connections,
            server_pid=gateway.pid,
        )
    finally:
        stop(gateway)
        stop(hello)
        redis.stop()
    ratio = wyre.requests_per_s / bare.requests_per_s
    extra: dict[str, object] = {"ratio_wyre_to_bare": round(ratio, 3), "goal": ">= 0.50"}
    if bare.server_cpu_us_per_request and wyre.server_cpu_us_per_request:
        # On a shared machine the CPU ratio is the steadier estimate of the throughput ratio.
        extra["cpu_ratio_bare_to_wyre"] = round(bare.server_cpu_us_per_request / wyre.server_cpu_us_per_request, 3)
    extra["load_average"] = os.getloadavg()
    report("wyre", [bare, wyre], extra)


if __name__ == "__main__":
    main()
