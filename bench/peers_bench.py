"""callgate against a peer that speaks the same protocol, same client, same requests, one run:
`python -m bench.peers_bench --peer-cmd "..."` or `--peer-url URL`.

The peer is not part of this repository: you get and start it (docs/peers.md says how for each
peer we could run). Today the protocol is the Cobo TSS Node callback (`POST` a form field
`TSS_JWT_MSG`, an RS256 token signed by the node's key; the answer an RS256 token signed by the
callback server's key), so the peer is Cobo's callback-server template or anything else that
answers it. Both servers get the same pre-signed key-sign requests (the routes benchmark's cached
file, only the path differs), trust the same node key and sign with the same answer key, so one
probe decodes both answers.

`--peer-cmd` is split like a shell line (wrap it in `sh -c '... exec ...'` to change directory)
and may use {port}, {keys} (the key folder), {node_public_key}, {service_private_key} and
{cobo_template_config} (a config file in the Cobo template's YAML format, written for you). Its
CPU is read from /proc for the process and its direct children (gunicorn's workers count).

callgate runs as `callgate gateway` (one process unless --processes) with a private Redis (AOF
everysec) and a database holding the routes benchmark's policy: every answer is a real, audited,
durably enqueued decision. The peer does only what its code does; docs/peers.md compares the work.

Runs alternate (peer, callgate, peer, callgate, ...) so both see the same neighbours on a shared
machine; the figures are the medians of --rounds runs, and CPU per request is the steadier one.
Each server gets enough connections to saturate it (--connections, --peer-connections): the
figures compared are throughput and CPU per answer, not latency at equal concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.harness import LoadResult, free_port, report, run_wrk, start, stop
from bench.routes_bench import (
    CACHE,
    LUA,
    ROUTES,
    WRK_TIMEOUT_S,
    _database,
    _drop_database,
    _rsa,
    _settle,
    gateway_env,
    make_keys,
    requests_file,
)
from callgate.embedded import EmbeddedRedis
from shared.providers import cobo_tss_samples as tss

CALLGATE_PATH = "/cobo/tss-node/v2/check"
ROUTE = next(r for r in ROUTES if r.name == "cobo_tss_check")
COBO_TEMPLATE_CONFIG = """callback_server:
  endpoint: 127.0.0.1:{port}
  client_public_key_path: {node_public_key}
  service_private_key_path: {service_private_key}
  token_expire_minutes: 2
  enable_debug: false
"""


@dataclass
class Target:
    name: str
    base: str  # scheme://host:port
    path: str
    requests: Path  # wrk request lines for this target's path
    pids: list[int]
    connections: int
    sent: int = 0  # requests sent so far: the next run continues with fresh ones


def _rewrite_path(lines: Path, path: str, out: Path) -> Path:
    """The same request lines (method, path, headers, body, tab-separated) with another path."""
    with lines.open("rb") as src, out.open("wb") as dst:
        for line in src:
            method, _, rest = line.split(b"\t", 2)
            dst.write(b"\t".join((method, path.encode(), rest)))
    return out


def _probe(target: Target, keys: Path) -> str:
    """One request through urllib; the decision inside the answer token, read with our key."""
    method, _, head, body = target.requests.read_bytes().split(b"\n", 1)[0].split(b"\t", 3)
    headers = dict(h.decode().split(": ", 1) for h in head.split(b"\x1f") if h)
    request = urllib.request.Request(target.base + target.path, data=body, headers=headers, method=method.decode())  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (a loopback URL or the one given)
        text = answer.read().decode()
    decided = tss.read_response(text, _rsa(str(keys), "ours").public_key())
    return f"{decided.get('status')} {decided.get('action')} {str(decided.get('error') or '')[:60]}"


def _load(target: Target, args: argparse.Namespace, *, record: bool = True) -> LoadResult | None:
    lua = LUA.replace("__FILE__", str(target.requests)).replace("__START__", str(target.sent))
    _settle(target.pids)
    try:
        result = run_wrk(
            target.name,
            target.base + target.path,
            lua,
            seconds=args.seconds if record else args.warmup,
            connections=target.connections,
            server_pid=target.pids if record else None,
            timeout_s=WRK_TIMEOUT_S,
        )
    except (KeyError, AttributeError):  # wrk printed no latencies: nothing was answered in the run
        print(f"{target.name}: no answers within {args.seconds if record else args.warmup} s")
        return None
    target.sent += result.requests
    if record:
        print(f"{target.name}: {result.requests_per_s:.0f} req/s, {result.server_cpu_us_per_request} µs CPU/req")
    return result


def _median(name: str, runs: list[LoadResult]) -> LoadResult:
    def mid(attr: str) -> float:
        return float(statistics.median(getattr(r, attr) or 0 for r in runs))

    return LoadResult(
        name=name,
        requests_per_s=mid("requests_per_s"),
        p50_ms=mid("p50_ms"),
        p90_ms=mid("p90_ms"),
        p99_ms=mid("p99_ms"),
        requests=sum(r.requests for r in runs),
        non_2xx=sum(r.non_2xx for r in runs),
        errors=sum(r.errors for r in runs),
        server_cpu_us_per_request=mid("server_cpu_us_per_request"),
    )


def _start_peer(args: argparse.Namespace, keys: Path) -> tuple[subprocess.Popen[bytes] | None, str]:
    if args.peer_url:
        return None, args.peer_url.rstrip("/")
    port = free_port()
    fields = {
        "port": str(port),
        "keys": str(keys),
        "node_public_key": str(keys / "node.pub"),
        "service_private_key": str(keys / "ours.pem"),
        "cobo_template_config": str(keys / f"cobo-template-{port}.yaml"),
    }
    Path(fields["cobo_template_config"]).write_text(COBO_TEMPLATE_CONFIG.format(**fields))
    cmd = [part.format(**fields) for part in shlex.split(args.peer_cmd)]
    return start(cmd, port), f"http://127.0.0.1:{port}"


def run(args: argparse.Namespace) -> None:
    make_keys(args.cache)
    ours = requests_file(ROUTE, args.cache, args.distinct)
    work = Path(tempfile.mkdtemp(prefix="callgate-peers-bench-"))
    theirs = _rewrite_path(ours, args.peer_path, work / "peer-requests.txt")
    redis = EmbeddedRedis(work / "redis").start()
    db_name = f"callgate_peers_bench_{os.getpid()}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        database_url = asyncio.run(_database(db_name, redis.url, 0))
        port = free_port()
        env = gateway_env(args.cache) | {
            "REDIS_URL": redis.url,
            "DATABASE_URL": database_url,
            "CALLGATE_PORT": str(port),
            "CALLGATE_SPOOL_DIR": str(work / "spool"),
        }
        cmd = [sys.executable, "-m", "callgate.cli", "gateway", "--processes", str(args.processes)]
        procs.append(start(cmd, port, env))
        peer_proc, peer_base = _start_peer(args, args.cache)
        if peer_proc is not None:
            procs.append(peer_proc)
        peer = Target(args.peer_name, peer_base, args.peer_path, theirs, [p.pid for p in procs[1:]],
                      args.peer_connections)  # fmt: skip
        callgate = Target(f"callgate ({args.processes} proc)", f"http://127.0.0.1:{port}", CALLGATE_PATH, ours,
                          [procs[0].pid], args.connections)  # fmt: skip
        for target in (peer, callgate):
            print(f"{target.name} answers: {_probe(target, args.cache)}")
            _load(target, args, record=False)
        runs: dict[str, list[LoadResult]] = {peer.name: [], callgate.name: []}
        for _ in range(args.rounds):
            for target in (peer, callgate):
                if (result := _load(target, args)) is not None:
                    runs[target.name].append(result)
    finally:
        for proc in reversed(procs):
            stop(proc)
        redis.stop()
        asyncio.run(_drop_database(db_name))
    _report(args, runs[peer.name], runs[callgate.name], peer.name, callgate.name)


def _report(
    args: argparse.Namespace, peer: list[LoadResult], ours: list[LoadResult], peer_name: str, name: str
) -> None:
    if not peer or not ours:
        sys.exit("no recorded run was answered: nothing to compare")
    theirs_m, ours_m = _median(peer_name, peer), _median(name, ours)
    ratio_rps = ours_m.requests_per_s / max(theirs_m.requests_per_s, 1e-9)
    ratio_cpu = (theirs_m.server_cpu_us_per_request or 0) / max(ours_m.server_cpu_us_per_request or 0, 1e-9)
    extra: dict[str, object] = {
        "ratio_requests_per_s_callgate_to_peer": round(ratio_rps, 2),
        "ratio_cpu_per_request_peer_to_callgate": round(ratio_cpu, 2),
        "rounds": {peer_name: [asdict(r) for r in peer], name: [asdict(r) for r in ours]},
        "seconds": args.seconds,
        "connections": {peer_name: args.peer_connections, name: args.connections},
        "load_average": os.getloadavg(),
    }
    report(f"peers-{args.peer_name}", [theirs_m, ours_m], extra)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    peer = parser.add_mutually_exclusive_group(required=True)
    peer.add_argument("--peer-cmd", help="command starting the peer on {port} (see above)")
    peer.add_argument("--peer-url", help="a running peer's base URL (it must trust {keys}/node.pub)")
    parser.add_argument("--peer-name", default="peer", help="a label for the figures and the results file")
    parser.add_argument("--peer-path", default="/v2/check", help="the peer's check route (Cobo's template)")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32, help="wrk connections to callgate")
    # A server that spends ~50 ms of CPU per answer is saturated by one or two connections; more
    # only queue, and answers past 1 s print latencies harness.run_wrk cannot parse yet.
    parser.add_argument("--peer-connections", type=int, default=2, help="wrk connections to the peer")
    parser.add_argument("--processes", type=int, default=1, help="callgate gateway processes")
    parser.add_argument("--distinct", type=int, default=30_000, help="distinct pre-signed requests (cached)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="keys and requests (shared with routes_bench)")
    return parser


def main(argv: list[str] | None = None) -> None:
    run(_parser().parse_args(argv))


if __name__ == "__main__":
    main()
