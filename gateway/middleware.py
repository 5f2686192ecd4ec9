"""Request-level concerns: correlation id, timing, and the translation of errors to answers.

Provider handlers answer their own protocol's rejections themselves (they know the format);
this middleware is the last line: a body over the cap becomes 413, anything unexpected a
generic 500 that leaks nothing, always logged with the route and the request id.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import time

import orjson
from aiohttp import HttpVersion11, web
from aiohttp.typedefs import Handler

# aiohttp's own Expect handler (a private name; tests/gateway/test_openapi.py sends 100-continue
# through it and fails if an upgrade moves it).
from aiohttp.web_urldispatcher import _default_expect_handler as _AIOHTTP_EXPECT
from prometheus_client import Histogram

from gateway.keys import METRICS
from shared.logging import correlation_id

logger = logging.getLogger(__name__)

REQUEST_ID = web.RequestKey("request_id", str)
# A body must arrive within this long once its headers have (slowloris); aiohttp has no such limit.
BODY_READ_TIMEOUT_S = 10.0

# Request ids: a random per-process prefix and a counter, unique across processes and hosts and
# far cheaper than uuid4 on the hot path.
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


def json_body(data: object, *, status: int = 200) -> web.Response:
    """A JSON response serialised with orjson (several times faster than aiohttp's json.dumps)."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


@functools.lru_cache(maxsize=1024)
def _route_timer(histogram: Histogram, route: str) -> Histogram:
    # `labels()` builds and looks up the label tuple under a lock on every call (~1.5 µs of the
    # ~2.4 µs an observation costs); routes are few and their children live as long as the metric.
    return histogram.labels(route)


def _route_name(request: web.Request) -> str:
    # The route's name is a bounded label; an unmatched path must not become a label value.
    resource = request.match_info.route.resource
    return (resource.name if resource is not None else None) or "unmatched"


def _request_id(request: web.Request) -> str:
    """The caller's X-Request-Id when it is a sane one, else a new id."""
    header = request.headers.get("X-Request-Id", "")
    return header[:64] if header.isascii() and header.isprintable() and header else new_request_id()


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Correlation id, latency histogram per route, and the last-resort error answer."""
    request[REQUEST_ID] = request_id = _request_id(request)
    # Every log line of this request carries its id. aiohttp runs each request in its own task
    # (its own copy of the context), so the value ends with the request: no reset needed.
    correlation_id.set(request_id)
    started = time.perf_counter()
    try:
        if await _body_in_time(request):
            response = await handler(request)
        else:
            response = _json(408, "timeout", "the request body did not arrive in time")
            response.force_close()
    except web.HTTPException as e:
        response = _from_http_exception(e)
    except web.RequestPayloadError:
        # A body aiohttp cannot decode (a false Content-Encoding, a broken chunk): the caller's fault.
        response = _json(400, "bad_body", "the request body could not be read")
        # aiohttp drops the connection after a body it could not parse: say so, so that the
        # client does not send its next request down a socket that is about to close.
        response.force_close()
    except Exception:
        logger.exception("unhandled error on %s %s (request %s)", request.method, _route_name(request), request_id)
        response = _json(500, "internal", "internal error")
    if not request.content.is_eof() and "Content-Encoding" in request.headers:
        # aiohttp drains a body the handler left unread after the answer, and drops the connection
        # (logging an "Unhandled exception") when it cannot decode it: announce the close, so that
        # the client does not send its next request down a socket that is about to go.
        response.force_close()
    _route_timer(request.app[METRICS].request_seconds, _route_name(request)).observe(time.perf_counter() - started)
    response.headers["X-Request-Id"] = request_id
    return response


async def expect(request: web.Request) -> web.StreamResponse | None:
    """Every route's `Expect` handler (aiohttp runs it before the middleware): 100-continue as
    aiohttp's own; any other expectation 417 in our error shape, with a request id, counted
    (`callgate_http_rejections_total{reason="bad_expect"}`), where aiohttp would answer plain text
    that no log or metric saw."""
    if request.headers.get("Expect", "").lower() == "100-continue" or request.version != HttpVersion11:
        # aiohttp's handler: "100 Continue" on HTTP/1.1, nothing on HTTP/1.0 (RFC 9110 10.1.1).
        await _AIOHTTP_EXPECT(request)
        return None
    request_id = _request_id(request)
    request.app[METRICS].http_rejections.labels("bad_expect").inc()
    logger.debug("request %s: unknown expectation %r refused", request_id, request.headers.get("Expect", "")[:64])
    response = _json(417, "expectation_failed", "only Expect: 100-continue is supported")
    response.headers["X-Request-Id"] = request_id
    return response


async def _body_in_time(request: web.Request) -> bool:
    """Read a body of announced length (within the cap) before the handler, with a deadline; the
    handler's own read then returns it at once. Others (chunked, encoded, over the cap) are left to it."""
    if request.content.is_eof():
        # The whole body came with the headers (the common case), or there is none: no timer needed.
        return True
    length = request.content_length
    if not length or length > request.client_max_size or "Content-Encoding" in request.headers:
        return True
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_S):
            await request.read()
    except TimeoutError:
        logger.warning("request %s: body not received within %.0fs, closed", request[REQUEST_ID], BODY_READ_TIMEOUT_S)
        return False
    return True


def _from_http_exception(e: web.HTTPException) -> web.Response:
    # aiohttp deprecates returning its exceptions as responses; answer our error shape instead.
    if e.status == 413:
        return _json(413, "too_large", "request body exceeds the configured limit")
    response = _json(e.status, e.reason.lower().replace(" ", "_"), e.reason)
    for header in ("Allow", "Location", "Retry-After"):
        if header in e.headers:
            response.headers[header] = e.headers[header]
    return response


def _json(status: int, code: str, detail: str) -> web.Response:
    return json_body({"error": code, "detail": detail}, status=status)


def error_response(status: int, code: str, detail: str) -> web.Response:
    """The fixed error shape `{"error": code, "detail": ...}` for routes with no protocol of their own."""
    return _json(status, code, detail)
