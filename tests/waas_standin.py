"""A local stand-in for the Cobo WaaS 2.0 API: a real aiohttp server on 127.0.0.1.

It checks Cobo Auth on every request with its own, independent implementation (so a bug in
`shared.waas.cobo_auth` cannot verify itself), signs its answers with an environment key generated
at test time, and can be scripted: per TSS request a sequence of statuses (each GET moves one step
on, the last one sticks) and a queue of faults consumed one per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# Faults a test can queue: each is consumed by exactly one incoming request.
FAULTS = frozenset({"500", "502", "429", "timeout", "bad_signature", "unsigned", "wrong_id", "not_json"})
_TSS_PATH = "/v2/wallets/mpc/vaults/{vault_id}/tss_requests/{tss_request_id}"
NONCE_WINDOW_MS = 60_000


def _raw(public: Ed25519PublicKey) -> str:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _digest(message: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(message).digest()).digest()


@dataclass
class Fault:
    """One scripted failure; `retry_after` only matters for 429."""

    kind: str
    retry_after: str | None = None


@dataclass
class WaasStandin:
    """Scriptable WaaS state plus the keys both sides need."""

    api_secret: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    env_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    # (vault_id, tss_request_id) -> statuses still to serve; the last one is served forever.
    scripts: dict[tuple[str, str], deque[str]] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    hang_s: float = 5.0
    # Added to every request: lets a test observe how many calls the client keeps in flight.
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    calls: int = 0
    auth_failures: int = 0
    seen_nonces: set[str] = field(default_factory=set)
    base_url: str = ""

    @property
    def api_secret_hex(self) -> str:
        return self.api_secret.private_bytes_raw().hex()

    @property
    def env_public_hex(self) -> str:
        return _raw(self.env_key.public_key())

    def script(self, vault_id: str, tss_request_id: str, *statuses: str) -> None:
        """Serve these statuses for the request, one step per GET, the last one sticking."""
        self.scripts[(vault_id, tss_request_id)] = deque(statuses)

    def fail(self, kind: str, *, times: int = 1, retry_after: str | None = None) -> None:
        """Queue `times` faults of one kind for the next requests."""
        assert kind in FAULTS, kind
        self.faults.extend(Fault(kind, retry_after) for _ in range(times))

    def sign(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        """`Biz-Timestamp` / `Biz-Resp-Signature` headers for a body, as Cobo signs answers and webhooks."""
        timestamp = timestamp or str(int(time.time() * 1000))
        signature = self.env_key.sign(_digest(body + b"|" + timestamp.encode())).hex()
        return {"Biz-Timestamp": timestamp, "Biz-Resp-Signature": signature}

    def _check_auth(self, request: web.Request, body: bytes) -> str | None:
        key = request.headers.get("Biz-Api-Key", "")
        nonce = request.headers.get("Biz-Api-Nonce", "")
        signature = request.headers.get("Biz-Api-Signature", "")
        if key != _raw(self.api_secret.public_key()):
            return "unknown API key"
        if not nonce.isdigit() or abs(int(nonce) - time.time() * 1000) > NONCE_WINDOW_MS:
            return "stale nonce"
        message = f"{request.method}|{request.raw_path.split('?')[0]}|{nonce}|{request.query_string}|".encode()
        try:
            self.api_secret.public_key().verify(bytes.fromhex(signature), _digest(message + body))
        except (ValueError, InvalidSignature):
            return "bad signature"
        return None

    def _answer(self, status: int, payload: object, *, signed: bool = True, tamper: bool = False) -> web.Response:
        body = json.dumps(payload).encode()
        # A tampered answer carries a well-formed signature over other bytes.
        headers = self.sign(body + b" " if tamper else body) if signed else {}
        return web.Response(status=status, body=body, headers=headers, content_type="application/json")

    async def handle_tss_request(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return await self._handle(request)
        finally:
            self.in_flight -= 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        problem = self._check_auth(request, body)
        if problem:
            self.auth_failures += 1
            return self._answer(401, {"error_code": 2023, "error_message": problem, "error_id": "standin"})
        self.seen_nonces.add(request.headers["Biz-Api-Nonce"])
        fault = self.faults.popleft() if self.faults else None
        if fault and fault.kind in {"500", "502"}:
            return web.Response(status=int(fault.kind), text="upstream trouble")
        if fault and fault.kind == "429":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return web.Response(status=429, text="slow down", headers=headers)
        if fault and fault.kind == "timeout":
            await asyncio.sleep(self.hang_s)
        vault_id, tss_request_id = request.match_info["vault_id"], request.match_info["tss_request_id"]
        script = self.scripts.get((vault_id, tss_request_id))
        if not script:
            return self._answer(404, {"error_code": 12002, "error_message": "not found", "error_id": "standin"})
        status = script.popleft() if len(script) > 1 else script[0]
        answered_id = "someone-else" if fault and fault.kind == "wrong_id" else tss_request_id
        tss = {
            "tss_request_id": answered_id,
            "target_key_share_holder_group_id": "group-1",
            "type": "KeyGen",
            "status": status,
            "description": "stand-in",
            "created_timestamp": 1_700_000_000_000,
        }
        if fault and fault.kind == "not_json":
            body = b"<html>oops</html>"
            return web.Response(status=200, body=body, headers=self.sign(body))
        return self._answer(
            200,
            tss,
            signed=not (fault and fault.kind == "unsigned"),
            tamper=bool(fault and fault.kind == "bad_signature"),
        )


@asynccontextmanager
async def running_standin(standin: WaasStandin | None = None) -> AsyncIterator[WaasStandin]:
    """Start the stand-in on a free local port; `base_url` ends in `/v2` like Cobo's."""
    standin = standin or WaasStandin()
    app = web.Application()
    app.router.add_get(_TSS_PATH, standin.handle_tss_request)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    standin.base_url = f"http://127.0.0.1:{port}/v2"
    try:
        yield standin
    finally:
        await runner.cleanup()
