"""Every provider route vs bare aiohttp, same client, same run: `python -m bench.routes_bench`.

The gateway runs as `python -m callgate.cli gateway --processes N` with every provider
configured (test keys generated once into a cache folder), a policy published so synchronous
routes decide, the expected orders and the UCW wallet registered, against a private
valkey-server (AOF everysec) and a fresh database on the local PostgreSQL; no worker runs, so
what is measured is the ack path. wrk (one thread, a separate process on loopback) replays
requests built here beforehand, signed or encrypted, each with its own id, so the client does no
crypto and async routes enqueue rather than short-cut as duplicates. The file of requests is
cached (`--cache`); every run starts fresh servers, so cached ids are new to them.

Phases: saturation with 1 and 2 gateway processes, then fixed rates with 1 process (wrk has no
open-loop pacing: each connection waits a random time between its requests with Lua `delay()`,
connections/rate on average, so the offered rate is an upper bound and latencies are
closed-loop; random, because with a fixed wait the connections stay in step and every request
arrives in a burst of all of them, which measures the burst's queue rather than the route).
Then worker
scaling: Wyre callbacks queued with no worker, then drained by 1 and by 2 worker processes
(`bench.e2e_bench.drain`). Results go to bench/results/routes.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from redis.asyncio import Redis

from bench.e2e_bench import drain
from bench.harness import RESULTS, LoadResult, cpu_seconds, free_port, machine, run_wrk, start, stop
from callgate.embedded import EmbeddedRedis
from shared import rsablocks
from shared.db import Pool, create_pool, migrate
from shared.keys import RedisKeys
from shared.orders import register
from shared.policy.model import ExpectedOrder
from shared.policy.store import publish
from shared.providers import chainup_samples as chainup
from shared.providers import cobo_tss_samples as tss
from shared.providers import uuwallet_samples as uu
from shared.providers.cobo_ucw_store import add_wallet
from shared.waas.cobo_auth import double_sha256

CACHE = Path(tempfile.gettempdir()) / "callgate-routes-bench"
POSTGRES_ADMIN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
WYRE_TOKEN = "bench-path-token-0123456789"
COSIGNER_TOKEN = "bench-cosigner-token-0123"
UCW_KEY = "bench-ucw-api-key-0123456789"
UU_KEY = "bench-uu-api-key-0123456789"
APP_ID = "bench-app"
WALLET = "00000000-0000-4000-8000-00000000be9c"
WRK_TIMEOUT_S = 30  # slow routes report their latency rather than socket timeouts
TSS_TTL_S = 7 * 86400  # cached tokens stay valid for a week

POLICY = {
    "defaults": {"*": "REJECT"},
    "lists": {"sanctioned": ["0x000000000000000000000000000000000000dead"]},
    "rules": [
        {"id": "sanctions", "kind": "destinations", "deny_lists": ["sanctioned"]},
        {"id": "usdt-limit", "kind": "amount_limit", "match": {"provider": ["chainup_cosigner", "chainup_waas"],
         "chain": "ETH", "asset": "USDT"}, "max_amount": "1000"},
        {"id": "web3", "kind": "contracts", "match": {"provider": "chainup_cosigner", "operation": "web3"},
         "allow": [chainup.USDT_ROUTER], "unlimited_approval": [chainup.USDT_ROUTER]},
        {"id": "one-speed-up", "kind": "speed_up", "match": {"provider": "chainup_cosigner"}, "max_rounds": 1},
        {"id": "ks", "kind": "tss", "match": {"provider": "cobo_tss", "operation": "keysign"},
         "signature_types": ["ECDSA"], "protocols": ["LINDELL"]},
        {"id": "eth", "kind": "amount_limit", "match": {"provider": "cobo_tss", "chain": "ETH", "asset": "ETH"},
         "max_amount": "10"},
        {"id": "orders", "kind": "expected_order", "match": {"provider": ["uuwallet", "chainup_waas"],
         "operation": "withdraw"}},
        {"id": "deposit-risk", "kind": "deposit_risk", "match": {"provider": "uuwallet", "operation": "deposit"},
         "max_risk_level": 60},
    ],
}  # fmt: skip

Req = tuple[str, str, dict[str, str], bytes]  # method, path, headers, body
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# -- keys ------------------------------------------------------------------------------------


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pub(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def make_keys(folder: Path) -> None:
    """Test keys for every provider, once per cache folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "done").exists():
        return
    for name, bits in (("node", 2048), ("ours", 2048), ("chainup", 2048), ("merchant", 2048), ("uu", 1024)):
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        (folder / f"{name}.pem").write_bytes(_pem(key))
        (folder / f"{name}.pub").write_bytes(_pub(key))
    (folder / "waas_api.hex").write_text(secrets.token_hex(32))
    (folder / "waas_env.hex").write_text(secrets.token_hex(32))
    (folder / "done").write_text("")


@cache
def _rsa(folder: str, name: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((Path(folder) / f"{name}.pem").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@cache
def _blocks_key(folder: str, name: str) -> rsablocks.RsaPrivate:
    return rsablocks.private_from_crypto(_rsa(folder, name))


def waas_env_key(folder: Path) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex((folder / "waas_env.hex").read_text()))


def gateway_env(keys: Path) -> dict[str, str]:
    waas_public = waas_env_key(keys).public_key().public_bytes_raw().hex()
    return {
        "CALLGATE_LOG_LEVEL": "WARNING",
        "CALLGATE_WYRE_PATH_TOKEN": WYRE_TOKEN,
        "CALLGATE_COBO_TSS_NODE_PUBLIC_KEY_FILE": str(keys / "node.pub"),
        "CALLGATE_COBO_TSS_EVENT_PUBLIC_KEY_FILE": str(keys / "node.pub"),
        "CALLGATE_COBO_TSS_PRIVATE_KEY_FILE": str(keys / "ours.pem"),
        "CALLGATE_COBO_WAAS_API_SECRET": (keys / "waas_api.hex").read_text(),
        "CALLGATE_COBO_WAAS_BASE_URL": "http://127.0.0.1:9/v2",  # never called: no worker runs
        "CALLGATE_COBO_WAAS_RESPONSE_PUBLIC_KEY": waas_public,
        "CALLGATE_UCW_API_KEYS": UCW_KEY,
        "CALLGATE_CHAINUP_COSIGNER_TOKEN": COSIGNER_TOKEN,
        "CALLGATE_CHAINUP_APP_ID": APP_ID,
        "CALLGATE_CHAINUP_PUBLIC_KEY_FILE": str(keys / "chainup.pub"),
        "CALLGATE_CHAINUP_MERCHANT_PRIVATE_KEY_FILE": str(keys / "merchant.pem"),
        "CALLGATE_UUWALLET_API_KEYS": UU_KEY,
        "CALLGATE_UUWALLET_PUBLIC_KEY_FILE": str(keys / "uu.pub"),
    }


# -- requests, one builder per route: (keys folder, index) -> request -------------------------


def _wyre(keys: str, i: int) -> Req:
    body = {"createdAt": 1613027293110, "id": f"TR_BENCH{i:09d}", "source": "bitcoin:EXTERNAL",
            "dest": "wallet:WA_8AFWHMHLYXH", "currency": "BTC", "amount": 0.01653538, "status": "CONFIRMED",
            "confirmedAt": 1613027293110, "metadata": {"BTCNetworkTxId": f"{i:064x}"}}  # fmt: skip
    return "POST", f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}", JSON, orjson.dumps(body)


def _tss_check(keys: str, i: int) -> Req:
    token = tss.request_token(tss.keysign(f"bench-ks-{i}"), _rsa(keys, "node"), ttl_s=TSS_TTL_S)
    return "POST", "/cobo/tss-node/v2/check", FORM, b"TSS_JWT_MSG=" + token.encode()


def _tss_event(keys: str, i: int) -> Req:
    data = {"request_id": f"ks-{i}", "request_type": 2, "request_status": 190}
    event = {"event_id": f"bench-ev-{i}", "event_type": "request.keysign.succeeded", "node_id": "n1", "data": data}
    token = tss.request_token(event, _rsa(keys, "node"), ttl_s=TSS_TTL_S)
    return "POST", "/cobo/tss-node/v2/event", FORM, b"TSS_JWT_MSG=" + token.encode()


def _tss_ping(keys: str, i: int) -> Req:
    return "GET", "/cobo/tss-node/ping", {}, b""


def _ucw(keys: str, i: int) -> Req:
    body = orjson.dumps({"tss_request_id": f"bench{i:012d}", "status": 130})
    return "POST", f"/api/v1/wallets/{WALLET}/tss/callback", {**JSON, "X-API-Key": UCW_KEY}, body


def _waas(keys: str, i: int) -> Req:
    event = {"event_id": f"bench-evt-{i}", "url": "https://example.com/cobo/waas/webhooks",
             "created_timestamp": 1720000000001, "type": "wallets.mpc.tss_request.succeeded",
             "data": {"data_type": "TSSRequest", "tss_request_id": f"bench{i}", "status": "Success"}}  # fmt: skip
    body, stamp = orjson.dumps(event), str(1720000000002 + i)
    signature = waas_env_key(Path(keys)).sign(double_sha256(body + b"|" + stamp.encode())).hex()
    return "POST", "/cobo/waas/webhooks", {**JSON, "Biz-Timestamp": stamp, "Biz-Resp-Signature": signature}, body


def _cosigner_withdraw(keys: str, i: int) -> Req:
    body = chainup.cosigner_body(chainup.COSIGNER_WITHDRAW, request_id=f"bench-w-{i}", withdraw_id=i)
    return "POST", "/chainup/cosigner/withdraw", {**JSON, "X-Callgate-Token": COSIGNER_TOKEN}, body


def _cosigner_web3(keys: str, i: int) -> Req:
    body = chainup.cosigner_body(chainup.COSIGNER_WEB3, request_id=f"bench-3-{i}", trans_id=i)
    return "POST", "/chainup/cosigner/web3", {**JSON, "X-Callgate-Token": COSIGNER_TOKEN}, body


def _private_encrypt(keys: str, name: str, plaintext: bytes, chunk: int) -> bytes:
    """Type-1 RSA blocks of `plaintext` in `chunk`-byte pieces (libcrypto through `rsablocks`)."""
    return rsablocks.private_encrypt(_blocks_key(keys, name), plaintext, chunk_size=chunk)


def _chainup_form(keys: str, payload: dict[str, object]) -> bytes:
    # As chainup_samples.encrypt_as_chainup (Java's 234-byte chunks, URL-safe Base64 unpadded).
    ciphertext = _private_encrypt(keys, "chainup", json.dumps(payload).encode(), 234)
    return chainup.waas_form(APP_ID, rsablocks.b64encode(ciphertext, urlsafe=True, padded=False))


def _chainup_notify(keys: str, i: int) -> Req:
    payload = {**chainup.WAAS_DEPOSIT, "id": str(10**8 + i), "txid": f"0x{i:064x}"}
    return "POST", "/chainup/waas/notify", FORM, _chainup_form(keys, payload)


def _chainup_confirm(keys: str, i: int) -> Req:
    payload = {**chainup.WAAS_CONFIRM, "request_id": f"cu-{i}"}
    return "POST", "/chainup/waas/withdraw-confirm", FORM, _chainup_form(keys, payload)


def _uu_callback(keys: str, i: int) -> Req:
    payload = {**uu.DEPOSIT, "requestUUID": str(uuid.UUID(int=i)), "txId": f"{i:064x}"}
    return "POST", "/uuwallet/callback", {**FORM, "X-API-KEY": UU_KEY}, _uu(keys, payload)


def _uu_withdraw_info(keys: str, i: int) -> Req:
    payload = {**uu.REQUEST_WITHDRAW, "requestUUID": str(uuid.UUID(int=i)), "callBackId": f"uu-{i}"}
    return "POST", "/uuwallet/withdraw-info", {**FORM, "X-API-KEY": UU_KEY}, _uu(keys, payload)


def _uu(keys: str, payload: dict[str, object]) -> bytes:
    # As uuwallet_samples.encrypt_as_waas (compact JSON, k-11-byte chunks, standard Base64).
    plaintext = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return rsablocks.b64encode(
        _private_encrypt(keys, "uu", plaintext, _blocks_key(keys, "uu").public.max_chunk)
    ).encode()


@dataclass(frozen=True)
class RouteSpec:
    name: str
    mode: str  # "async" (enqueued), "sync" (decided and answered), "get"
    build: Callable[[str, int], Req]
    costly: bool = False  # built with RSA private-key operations: fewer distinct requests


ROUTES = (
    RouteSpec("wyre", "async", _wyre),
    RouteSpec("cobo_tss_check", "sync", _tss_check, costly=True),
    RouteSpec("cobo_tss_event", "async", _tss_event, costly=True),
    RouteSpec("cobo_tss_ping", "get", _tss_ping),
    RouteSpec("cobo_ucw_callback", "async", _ucw),
    RouteSpec("cobo_waas_webhook", "async", _waas),
    RouteSpec("chainup_cosigner_withdraw", "sync", _cosigner_withdraw),
    RouteSpec("chainup_cosigner_web3", "sync", _cosigner_web3),
    RouteSpec("chainup_waas_notify", "async", _chainup_notify, costly=True),
    RouteSpec("chainup_waas_withdraw_confirm", "sync", _chainup_confirm, costly=True),
    RouteSpec("uuwallet_callback", "async", _uu_callback, costly=True),
    RouteSpec("uuwallet_withdraw_info", "sync", _uu_withdraw_info, costly=True),
)


def _line(req: Req) -> bytes:
    method, path, headers, body = req
    assert b"\t" not in body and b"\n" not in body, "bodies travel one per line"
    head = "\x1f".join(f"{k}: {v}" for k, v in headers.items())
    return f"{method}\t{path}\t{head}\t".encode() + body + b"\n"


def _build_chunk(name: str, keys: str, start: int, count: int) -> bytes:
    route = next(r for r in ROUTES if r.name == name)
    return b"".join(_line(route.build(keys, i)) for i in range(start, start + count))


def requests_file(route: RouteSpec, keys: Path, count: int) -> Path:
    """The cached file of `count` distinct requests of `route` (built on every core when missing)."""
    path = keys / f"{route.name}.{count}.txt"
    if path.exists():
        return path
    count_here = 1 if route.mode == "get" else count
    workers = (os.cpu_count() or 1) if route.costly else 1
    share = -(-count_here // workers)
    starts = range(0, count_here, share)
    counts = [min(share, count_here - s) for s in starts]
    with ProcessPoolExecutor(workers) as pool:
        chunks = pool.map(_build_chunk, [route.name] * len(counts), [str(keys)] * len(counts), starts, counts)
        data = b"".join(chunks)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.rename(path)
    return path


# Requests are formatted in init(), which wrk calls once Host is known (not at load time).
LUA = r"""
local reqs = {}
init = function(args)
  for line in io.lines("__FILE__") do
    local method, path, head, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = {}
    for h in head:gmatch("[^\031]+") do
      local k, v = h:match("^([^:]+): (.*)$")
      headers[k] = v
    end
    if body == "" then body = nil end
    reqs[#reqs + 1] = wrk.format(method, path, headers, body)
  end
end
local i = __START__
request = function()
  i = i + 1
  return reqs[((i - 1) % #reqs) + 1]
end
"""
# Uniform on [0, 2 x mean] ms: the connections drift apart at once instead of arriving together.
DELAY = "\ndelay = function() return math.random() * 2 * __DELAY__ end\n"


# -- servers and state ------------------------------------------------------------------------


async def _database(name: str, redis_url: str, orders: int) -> str:
    """A fresh database with the schema, the policy, the UCW wallet and `orders` expected orders."""
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = POSTGRES_ADMIN.rpartition("/")[0] + "/" + name
    pool, redis, keys = await create_pool(url, max_size=8), Redis.from_url(redis_url), RedisKeys()
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            await add_wallet(conn, redis, keys, WALLET, "bench-vault")
        await publish(pool, redis, keys, orjson.dumps(POLICY).decode(), published_by="bench")
        await _register_orders(pool, redis, keys, orders)
    finally:
        await pool.close()
        await redis.aclose()
    return url


async def _register_orders(pool: Pool, redis: Redis, keys: RedisKeys, count: int) -> None:
    expires = time.time() + 86400
    cu = chainup.waas_confirm_order("", expires_at=expires)
    uw = ExpectedOrder(provider="uuwallet", order_ref="", chain="TRON", asset="USDT",
                       destination=str(uu.WITHDRAW["toAddress"]), amount=Decimal("3.3"), expires_at=expires,
                       extras=(("tenantUserId", str(uu.REQUEST_WITHDRAW["tenantUserId"])),))  # fmt: skip
    orders = [replace(cu, order_ref=f"cu-{i}") for i in range(count)]
    orders += [replace(uw, order_ref=f"uu-{i}") for i in range(count)]
    for start_i in range(0, len(orders), 64):
        await asyncio.gather(*(register(pool, redis, keys, o) for o in orders[start_i : start_i + 64]))


async def _drop_database(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def _probe(base: str, req: Req, keys: Path) -> str:
    method, path, headers, body = req
    request = urllib.request.Request(base + path, data=body or None, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (a loopback URL we built)
            text = answer.read()
    except urllib.error.HTTPError as e:
        return f"{e.code} {e.read()[:90]!r}"
    if path == "/cobo/tss-node/v2/check":  # a signed token: show the decision inside
        decided = tss.read_response(text.decode(), _rsa(str(keys), "ours").public_key())
        return f"200 {decided.get('status')} {decided.get('action')} {str(decided.get('error', ''))[:60]}"
    return f"200 {text[:90]!r}"


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    files: dict[str, Path]
    distinct: dict[str, int]
    used: dict[str, int]  # requests sent so far per route (ids never repeat until a file wraps)
    rows: list[dict[str, Any]]

    def load(
        self,
        route: str,
        url: str,
        phase: str,
        *,
        rate: int | None,
        pid: int | list[int],
        record: bool = True,
        as_: str = "",
    ) -> LoadResult | None:
        """One wrk run of `route`'s requests, continuing where the last run of `as_ or route` stopped."""
        counter = as_ or route
        start_i = self.used.get(counter, 0)
        lua = LUA.replace("__FILE__", str(self.files[route])).replace("__START__", str(start_i))
        if rate is not None:
            lua += DELAY.replace("__DELAY__", str(round(1000 * self.args.connections / rate, 3)))
        seconds = self.args.seconds if record else self.args.warmup
        _settle(pid)
        spy = self._profile(counter, pid) if record and self.args.profile else None
        try:
            result = run_wrk(f"{route} {phase}", url, lua, seconds=seconds, connections=self.args.connections,
                             server_pid=pid, timeout_s=WRK_TIMEOUT_S)  # fmt: skip
        except (KeyError, AttributeError):  # wrk printed no latency: nothing was answered in time
            print(f"{counter} {phase}: no answers within {seconds} s", flush=True)
            return None
        finally:
            if spy is not None:
                spy.wait()
        self.used[counter] = start_i + result.requests
        if record:
            fresh = max(0, min(self.distinct[route], start_i + result.requests) - start_i)
            self.rows.append({**asdict(result), "route": counter, "phase": phase, "rate": rate,
                              "fresh_share": round(fresh / max(result.requests, 1), 3)})  # fmt: skip
            print(f"{counter} {phase}: {result.requests_per_s:.0f} req/s p99 {result.p99_ms} ms", flush=True)
        return result

    def _profile(self, route: str, pid: int | list[int]) -> subprocess.Popen[bytes]:
        """py-spy sampling the (first) server process for the run, folded stacks to bench/results/."""
        target = pid if isinstance(pid, int) else pid[0]
        out = RESULTS / f"profile-{route}.txt"
        cmd = ["py-spy", "record", "-p", str(target), "-d", str(self.args.seconds), "-f", "raw", "-o", str(out)]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _settle(pid: int | list[int], *, timeout_s: float = 30.0) -> None:
    """Wait until the server is idle: requests a client gave up on are still being answered, and
    that work must not be billed to the next run."""
    pids = [pid] if isinstance(pid, int) else pid
    deadline = time.monotonic() + timeout_s
    before = sum(cpu_seconds(p) for p in pids)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = sum(cpu_seconds(p) for p in pids)
        if now - before < 0.03:  # under 10 % of a core
            return
        before = now


def _phase(
    run: Run, gateway_port: int, hello_port: int, pids: tuple[int, list[int]], phase: str, rate: int | None
) -> None:
    hello_pid, gateway_pid = pids
    base = f"http://127.0.0.1:{gateway_port}"
    wyre_path = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"
    # The yardstick gets the Wyre requests on its own count (it stores nothing).
    hello = f"http://127.0.0.1:{hello_port}{wyre_path}"
    if rate is None:
        run.load("wyre", hello, "warmup", rate=None, pid=hello_pid, record=False, as_="bare_aiohttp")
    bare = run.load("wyre", hello, phase, rate=rate, pid=hello_pid, as_="bare_aiohttp")
    if bare is None:
        return
    for route in ROUTES:
        if route.name not in run.files:
            continue
        if rate is None:
            run.load(route.name, base + "/", phase, rate=None, pid=gateway_pid, record=False)
        result = run.load(route.name, base + "/", phase, rate=rate, pid=gateway_pid)
        if result is not None:
            _ratio(run.rows[-1], result, bare)


def _ratio(row: dict[str, Any], result: LoadResult, bare: LoadResult) -> None:
    row["ratio_rps_to_bare"] = round(result.requests_per_s / bare.requests_per_s, 3)
    if result.server_cpu_us_per_request and bare.server_cpu_us_per_request:
        row["ratio_cpu_bare_to_route"] = round(bare.server_cpu_us_per_request / result.server_cpu_us_per_request, 3)


def run_routes(args: argparse.Namespace, keys: Path, redis: EmbeddedRedis, database_url: str, run: Run) -> None:
    env = {**gateway_env(keys), "REDIS_URL": redis.url, "DATABASE_URL": database_url,
           "CALLGATE_SPOOL_DIR": str(redis.data_dir.parent / "spool")}  # fmt: skip
    hello_port = free_port()
    hello = start([sys.executable, "-m", "bench.hello_server", str(hello_port)], hello_port)
    try:
        for processes in args.processes:
            port = free_port()
            gateways = _gateways(processes, port, {**env, "CALLGATE_PORT": str(port)})
            pids = (hello.pid, [g.pid for g in gateways])
            try:
                time.sleep(1.5)  # the policy and the order replica load after the port opens
                if processes == args.processes[0]:
                    for name, path in run.files.items():
                        print(
                            f"probe {name:<30} {_probe(f'http://127.0.0.1:{port}', _read_last(path), keys)}", flush=True
                        )
                _phase(run, port, hello_port, pids, f"saturation {processes} proc", None)
                if processes == 1:
                    for rate in args.rates:
                        _phase(run, port, hello_port, pids, f"{rate}/s 1 proc", rate)
            finally:
                for gateway in gateways:
                    stop(gateway)
    finally:
        stop(hello)


def _gateways(n: int, port: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    """N gateway processes sharing the port, each our own child (so each is measured and stopped)."""
    cmd = [sys.executable, "-m", "callgate.cli", "gateway", "--processes", "1", "--reuse-port"]
    first = start(cmd, port, env)
    return [first] + [subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL) for _ in range(n - 1)]


def _read_last(path: Path) -> Req:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 8192))
        line = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    method, route, head, body = line.split(b"\t", 3)
    headers = dict(h.split(": ", 1) for h in head.decode().split("\x1f") if h)
    return method.decode(), route.decode(), headers, body


# -- worker scaling ---------------------------------------------------------------------------


def spawn_workers(n: int) -> None:
    """`python -m bench.routes_bench spawn-workers N`: N worker processes; SIGTERM stops them all."""
    cmd = [sys.executable, "-m", "callgate.cli", "worker"]
    children = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for _ in range(n)]

    def _stop(*_: object) -> None:
        for child in children:
            child.terminate()

    signal.signal(signal.SIGTERM, _stop)
    for child in children:
        child.wait()


async def run_workers(args: argparse.Namespace, keys: Path, redis_url: str, database_url: str) -> dict[str, Any]:
    client = Redis.from_url(redis_url)
    await client.flushdb()  # the routes' queued jobs are not this part's work
    await client.aclose()
    port = free_port()
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "CALLGATE_PORT": str(port),
           "CALLGATE_WORKER_METRICS_PORT": str(free_port()), "CALLGATE_WYRE_PATH_TOKEN": WYRE_TOKEN,
           "CALLGATE_SPOOL_DIR": str(keys / "spool-workers"), "CALLGATE_LOG_LEVEL": "WARNING"}  # fmt: skip
    gateway = start([sys.executable, "-m", "callgate.cli", "gateway"], port, env)
    url = f"http://127.0.0.1:{port}/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"
    out: dict[str, Any] = {}
    try:
        for n in args.workers:
            cmd = [sys.executable, "-m", "bench.routes_bench", "spawn-workers", str(n)]
            figures = await drain(url, database_url, cmd, env, events=args.events)
            figures["stored_per_s_per_process"] = round(figures["stored_per_s"] / n, 1)
            out[f"{n}_proc"] = figures
            print(f"workers {n} proc: {figures}")
    finally:
        stop(gateway)
    return out


# -- main -------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="wrk run per route and phase")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="gateway processes")
    parser.add_argument("--rates", type=int, nargs="*", default=[500], help="fixed rates (1 process)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="worker processes")
    parser.add_argument("--events", type=int, default=5000, help="callbacks per worker drain")
    parser.add_argument("--distinct", type=int, default=150_000, help="distinct requests of cheap routes")
    parser.add_argument("--distinct-costly", type=int, default=30_000, help="… of RSA-built routes")
    parser.add_argument("--routes", nargs="*", help="only these routes (default: all)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--profile", action="store_true", help="py-spy each route's recorded run (slows it)")
    parser.add_argument("--workers-only", action="store_true", help="only the worker drains")
    parser.add_argument("--build-only", action="store_true", help="build the cached requests and stop")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["spawn-workers"]:
        spawn_workers(int(argv[1]))
        return
    args = _parser().parse_args(argv)
    make_keys(args.cache)
    chosen: Iterable[RouteSpec] = [r for r in ROUTES if not args.routes or r.name in args.routes]
    distinct = {r.name: 1 if r.mode == "get" else args.distinct_costly if r.costly else args.distinct for r in chosen}
    files = {r.name: requests_file(r, args.cache, distinct[r.name]) for r in chosen}
    if "wyre" not in files:
        files["wyre"], distinct["wyre"] = requests_file(ROUTES[0], args.cache, args.distinct), args.distinct
    if args.build_only:
        return
    data = Path(tempfile.mkdtemp(prefix="callgate-routes-bench-"))
    redis = EmbeddedRedis(data / "redis").start()
    name = f"callgate_routes_bench_{os.getpid()}"
    run = Run(args, files, distinct, {}, [])
    try:
        database_url = asyncio.run(_database(name, redis.url, 0 if args.workers_only else args.distinct_costly))
        if not args.workers_only:
            run_routes(args, args.cache, redis, database_url, run)
            _print(run.rows)
            if not args.profile:  # sampled runs are slower: their figures are not the published ones
                extra = {"rows": run.rows, "connections": args.connections, "seconds": args.seconds}
                _write("routes.json", extra | {"goal": "wyre >= 0.50 of bare aiohttp"})
        if args.workers:
            # Its own file: a drain that fails or times out does not cost the route figures.
            workers = asyncio.run(run_workers(args, data, redis.url, database_url))
            _write("routes_workers.json", {"workers": workers, "goal": "worker >= 1000 events/s/process"})
    finally:
        redis.stop()
        asyncio.run(_drop_database(name))


def _write(file: str, extra: dict[str, Any]) -> None:
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    payload = {"bench": "routes", "at": at, "machine": machine(), "load_average": os.getloadavg(), **extra}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / file).write_text(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(f"written to {RESULTS / file}")


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"{'route':<30} {'phase':<17} {'req/s':>8} {'p50':>7} {'p90':>7} {'p99':>7} {'µs/req':>7} "
          f"{'x bare':>6} {'cpu x':>6} {'fresh':>6} {'non2xx':>6} {'errors':>6}")  # fmt: skip
    for r in rows:
        print(f"{r['route']:<30} {r['phase']:<17} {r['requests_per_s']:8.0f} {r['p50_ms']:7.2f} {r['p90_ms']:7.2f} "
              f"{r['p99_ms']:7.2f} {r['server_cpu_us_per_request'] or 0:7.0f} {r.get('ratio_rps_to_bare', 1):6.2f} "
              f"{r.get('ratio_cpu_bare_to_route', 1):6.2f} {r['fresh_share']:6.2f} {r['non_2xx']:6d} "
              f"{r['errors']:6d}")  # fmt: skip


if __name__ == "__main__":
    main()
