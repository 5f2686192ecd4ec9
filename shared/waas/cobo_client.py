"""Cobo WaaS 2.0 API client (aiohttp): Cobo Auth signing, response verification, retries, limits.

Only what reconciliation needs: `get_tss_request_by_id`. Every 2xx answer must carry a valid
`Biz-Resp-Signature`, as the official SDK requires; an unsigned or badly signed answer is an error
and is never parsed. Transient failures (connection errors, timeouts, 5xx, 429) are retried with
exponential backoff and jitter, honouring `Retry-After`; other 4xx are final. A semaphore caps the
calls in flight and a spacing limiter caps the call rate, per client (so per worker process: a
fleet-wide limit would need a Redis counter, which the volumes here do not justify yet).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from yarl import URL

from shared.errors import ApiError, InvalidInput, Unauthorized
from shared.waas.cobo_auth import request_headers, verify_response
from shared.waas.cobo_models import TSSRequest, parse_tss_request

__all__ = ["ClientOptions", "CoboWaasClient", "WaasCallObserver", "WaasRejected", "WaasUnavailable"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# A TSSRequest is well under 1 KiB; anything this large is not an answer we want to hold in memory.
_MAX_RESPONSE_BYTES = 256 * 1024


class WaasUnavailable(ApiError):
    """WaaS could not be reached, timed out, answered 5xx or 429: worth trying again later."""

    def __init__(self, method: str, url: str, status: int, body: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(method, url, status, body)
        self.retry_after_s = retry_after_s


class WaasRejected(ApiError):
    """WaaS (or something posing as it) answered 2xx, but the answer is unsigned, badly signed or unusable."""

    def __init__(self, method: str, url: str, status: int, body: str, *, outcome: str) -> None:
        super().__init__(method, url, status, body)
        self.outcome = outcome


class WaasCallObserver(Protocol):
    """Told about every HTTP attempt: a bounded outcome label and its duration (metrics hook)."""

    def __call__(self, outcome: str, seconds: float) -> None: ...


def _ignore(outcome: str, seconds: float) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Timeouts, retry policy and limits of one client."""

    timeout_s: float = 10.0
    max_attempts: int = 4
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    # A Retry-After beyond this is not slept through inside a call: the error carries it to the caller.
    max_retry_after_s: float = 30.0
    max_concurrency: int = 8
    rate_per_s: float = 20.0
    rate_burst: int = 5


class _RateLimiter:
    """Spaces calls 1/rate apart, letting `burst` calls through at once after a quiet spell."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._interval = 1.0 / rate_per_s
        self._burst_s = max(0, burst - 1) * self._interval
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        # No await between reading and writing `_next`: coroutines of one loop cannot interleave here.
        slot = max(self._next, now - self._burst_s)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


class _StopOnLongRetryAfter(stop_base):
    """Give up at once when WaaS asks for a longer pause than a call should block for."""

    def __init__(self, limit_s: float) -> None:
        self._limit_s = limit_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        after = error.retry_after_s if isinstance(error, WaasUnavailable) else None
        return after is not None and after > self._limit_s


def _retry_after_s(value: str | None) -> float | None:
    """Parse `Retry-After` (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class CoboWaasClient:
    """Signed, verified, retried calls to one WaaS 2.0 environment."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_secret: Ed25519PrivateKey,
        response_key: Ed25519PublicKey,
        options: ClientOptions | None = None,
        observe: WaasCallObserver = _ignore,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        # Cobo signs the full path, `/v2` included, so keep the base URL's own path prefix.
        self._base_path = urlsplit(self._base).path
        self._secret = api_secret
        self._response_key = response_key
        self._options = options or ClientOptions()
        self._observe = observe
        self._semaphore = asyncio.Semaphore(self._options.max_concurrency)
        self._limiter = _RateLimiter(self._options.rate_per_s, self._options.rate_burst)

    async def get_tss_request_by_id(self, vault_id: str, tss_request_id: str) -> TSSRequest:
        """`GET /v2/wallets/mpc/vaults/{vault_id}/tss_requests/{tss_request_id}`, verified and typed.

        Raises WaasUnavailable when retries are exhausted on a transient failure, ApiError on any
        other error (4xx, bad or missing response signature, an answer that is not the request asked for).
        """
        resource = f"/wallets/mpc/vaults/{quote(vault_id, safe='')}/tss_requests/{quote(tss_request_id, safe='')}"

        def parse(data: object) -> TSSRequest:
            request = parse_tss_request(data)
            if request.tss_request_id != tss_request_id:
                raise InvalidInput("tss_request_id", f"answer is about {request.tss_request_id!r}")
            return request

        return await self._get(resource, parse)

    async def _get(self, resource: str, parse: Callable[[object], _T]) -> _T:
        opts = self._options
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(WaasUnavailable),
            stop=stop_after_attempt(opts.max_attempts) | _StopOnLongRetryAfter(opts.max_retry_after_s),
            wait=self._wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt("GET", resource, parse)
        raise AssertionError("unreachable: tenacity either returns or reraises")

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, WaasUnavailable) and error.retry_after_s is not None:
            return error.retry_after_s
        # "Full jitter": uniform in [0, min(max, initial * 2^n)], so a burst of clients spreads out.
        backoff: Callable[[RetryCallState], float] = wait_random_exponential(
            multiplier=self._options.backoff_initial_s, max=self._options.backoff_max_s
        )
        return backoff(state)

    async def _attempt(self, method: str, resource: str, parse: Callable[[object], _T]) -> _T:
        await self._limiter.wait()
        async with self._semaphore:
            started = time.perf_counter()
            outcome = "error"
            try:
                data = await self._send(method, resource, parse)
                outcome = "ok"
                return data
            except ApiError as e:
                outcome = _outcome(e)
                raise
            finally:
                self._observe(outcome, time.perf_counter() - started)

    async def _send(self, method: str, resource: str, parse: Callable[[object], _T]) -> _T:
        url = self._base + resource
        headers = request_headers(self._secret, method, self._base_path + resource)
        headers.update({"Accept": "application/json", "Content-Type": "application/json"})
        timeout = aiohttp.ClientTimeout(total=self._options.timeout_s)
        try:
            # encoded=True: send the path byte for byte as signed, yarl must not re-quote it.
            async with self._session.request(method, URL(url, encoded=True), headers=headers, timeout=timeout) as resp:
                body = await _read_capped(resp)
                return _parse_answer(self._decode(method, url, resp, body), parse, method, url)
        except TimeoutError as e:
            raise WaasUnavailable(method, url, 0, "timed out") from e
        except aiohttp.ClientError as e:
            raise WaasUnavailable(method, url, 0, f"connection failed: {type(e).__name__}") from e

    def _decode(self, method: str, url: str, resp: aiohttp.ClientResponse, body: bytes) -> object:
        text = body.decode(errors="replace")
        if resp.status == 429 or resp.status >= 500:
            retry_after = _retry_after_s(resp.headers.get("Retry-After"))
            raise WaasUnavailable(method, url, resp.status, text, retry_after_s=retry_after)
        if not 200 <= resp.status < 300:
            raise ApiError(method, url, resp.status, text)
        try:
            verify_response(self._response_key, resp.headers, body)
        except Unauthorized as e:
            raise WaasRejected(method, url, resp.status, str(e), outcome="bad_signature") from e
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise WaasRejected(method, url, resp.status, "signed answer is not JSON", outcome="bad_answer") from e


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > _MAX_RESPONSE_BYTES:
            raise WaasRejected(resp.method, str(resp.url), resp.status, "answer too large", outcome="bad_answer")
        chunks.append(chunk)
    return b"".join(chunks)


def _outcome(error: ApiError) -> str:
    if isinstance(error, WaasUnavailable):
        if error.status == 0:
            return "timeout" if error.body == "timed out" else "connection_error"
        return "rate_limited" if error.status == 429 else "server_error"
    if isinstance(error, WaasRejected):
        return error.outcome
    return "client_error"


def _parse_answer(data: object, parse: Callable[[object], _T], method: str, url: str) -> _T:
    try:
        return parse(data)
    except InvalidInput as e:
        raise WaasRejected(method, url, 200, f"unusable answer: {e}", outcome="bad_answer") from e
