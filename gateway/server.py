"""The gateway's HTTP server: aiohttp's, with a deadline for a request's head, our own answer
to a head aiohttp could not parse, and no error traceback for an unread body it cannot decode.

aiohttp has no limit on how long a request's line and headers may take to arrive: a client that
sends a header line every few seconds (slowloris) holds its connection until the 75 s keep-alive
timeout. `HeadDeadlineHandler` adds one, the way nginx's `client_header_timeout` works: it runs
from the moment a connection opens, and on an idle keep-alive connection from the first byte of
the next request; it stops when the head is parsed. The timer is per connection, not per request:
armed at the accept and cancelled by the first head; a later request whose head arrives in one
read (every provider's, in practice) arms none, so a keep-alive request pays one integer comparison.

A body that trickles is the middleware's business (`gateway/middleware.py::_body_in_time`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo
from aiohttp.web_request import BaseRequest
from prometheus_client import Counter

from gateway.keys import METRICS
from gateway.middleware import error_response
from shared.config import Settings

logger = logging.getLogger(__name__)

# aiohttp's parser limits, stated rather than inherited: no provider sends a header near 8 KiB, and
# a head over them is answered 431 and the connection closed before anything reaches a handler.
MAX_LINE_BYTES = 8190  # request line, and each header field
MAX_HEADERS = 64
# What web.run_app uses; a bare AppRunner would keep idle connections for an hour.
KEEPALIVE_TIMEOUT_S = 75.0
SHUTDOWN_TIMEOUT_S = 30.0


def _raw_error(status: HTTPStatus, code: str, detail: str) -> bytes:
    """A complete HTTP/1.1 error answer in the gateway's JSON error shape, closing the connection."""
    body = orjson.dumps({"error": code, "detail": detail})
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


_HEAD_TIMEOUT_ANSWER = _raw_error(HTTPStatus.REQUEST_TIMEOUT, "timeout", "the request head did not arrive in time")


class HeadDeadlineHandler(RequestHandler):
    """aiohttp's per-connection protocol with a deadline for each request's head.

    It reads private parts of RequestHandler (`_request_count`, `_waiter`, `_messages`,
    `_current_request`, `_ErrInfo`); tests/fuzz/test_slow_clients.py and tests/gateway/test_server.py
    fail if an aiohttp upgrade changes what they mean."""

    __slots__ = ("_head_timeout_s", "_head_timer", "_refused", "_rejections")

    def __init__(self, manager: web.Server, *, head_timeout_s: float, rejections: Counter, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout_s = head_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        self._rejections = rejections
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # The first head is due from the accept: a connection that never sends a byte must not
        # hold its socket for the whole keep-alive timeout either.
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        requests_before = self._request_count
        super().data_received(data)
        if self._request_count != requests_before:  # a head was parsed (or refused): deadline met
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            refusal = self._messages[-1][0]
            if isinstance(refusal, _ErrInfo):
                # The parser refused the stream; the connection closes once that is answered. Until
                # then aiohttp would parse every further read again, queueing an error that quotes
                # the whole read (up to 32 x 2 x 256 KiB per connection): read and drop instead.
                self._refused = True
                self._fail_body_in_progress(refusal)
        elif data and self._head_timer is None and self._waiter is not None:
            # Idle between requests (the handler waits for the next one) and bytes arrived without
            # completing a head: the next request has started.
            self._arm()

    def _fail_body_in_progress(self, refusal: _ErrInfo) -> None:
        """A refusal in the middle of a body (a Content-Encoding that fails to decode once the rest
        of the body arrives in a later read): aiohttp queues it as the next message and leaves the
        running handler's body stream open, so that handler would wait on it forever. End that
        stream with the error: the handler's read raises it and the middleware answers 400."""
        request = self._current_request
        if request is not None and not request.content.is_eof():
            request.content.set_exception(RequestPayloadError(f"the request body could not be read: {refusal.message}"))

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_timer = self._loop.call_later(self._head_timeout_s, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._rejections.labels("head_timeout").inc()
        logger.debug("request head not received within %.1fs from %s, closed", self._head_timeout_s, self.peername)
        transport.write(_HEAD_TIMEOUT_ANSWER)
        self.force_close()  # closes the transport once the answer is flushed

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's error log, but for one routine case a debug line: a handler answered without
        reading a body (a refusal on its headers), aiohttp drained the body after the answer, and
        could not decode it (a false Content-Encoding). The answer went out, announcing the close
        (gateway/middleware.py), and the connection closes: nothing was left unhandled, and on a
        public port this is hostile input, not a bug. Every other exception is logged as before."""
        exc = kw.get("exc_info")
        if args[:1] == ("Unhandled exception",) and _undecodable_body(exc):
            logger.debug("unread body from %s: its Content-Encoding did not decode when drained, closed", self.peername)
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A head the parser refused: our JSON error shape, counted, no traceback in the log (hostile
        input is routine on a public port). Anything else keeps aiohttp's handling."""
        if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        too_large = isinstance(exc, LineTooLong) or "Too many headers" in str(exc)
        reason = "head_too_large" if too_large else "bad_head"
        self._rejections.labels(reason).inc()
        logger.debug("request head refused (%s) from %s: %s", reason, request.remote, exc)
        if too_large:
            response = error_response(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "head_too_large", "request head too large"
            )
        else:
            response = error_response(HTTPStatus.BAD_REQUEST, "bad_request", "malformed HTTP request")
        response.force_close()
        return response


def _undecodable_body(exc: object) -> bool:
    # aiohttp's parsers (C and Python) fail the body stream with a RequestPayloadError caused by
    # the ContentEncodingError of the decompressor.
    return isinstance(exc, web.RequestPayloadError) and isinstance(exc.__cause__, ContentEncodingError)


class _Server(web.Server):
    """aiohttp's connection factory, building HeadDeadlineHandler protocols."""

    def __init__(self, base: web.Server, *, head_timeout_s: float, rejections: Counter) -> None:
        # The app's Server carries the handler, request factory and the handler kwargs aiohttp
        # assembled (debug flag, access log, limits): take them over as they are.
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )
        self._head_timeout_s = head_timeout_s
        self._rejections = rejections

    def __call__(self) -> RequestHandler:
        return HeadDeadlineHandler(
            self, loop=self._loop, head_timeout_s=self._head_timeout_s, rejections=self._rejections, **self._kwargs
        )


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections get HeadDeadlineHandler; sites use it as usual."""

    __slots__ = ("_head_timeout_s",)

    def __init__(self, app: web.Application, settings: Settings) -> None:
        super().__init__(
            app,
            access_log=None,
            keepalive_timeout=KEEPALIVE_TIMEOUT_S,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_LINE_BYTES,
            max_headers=MAX_HEADERS,
        )
        self._head_timeout_s = settings.request_head_timeout_seconds

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()  # runs the app's startup (cleanup_ctx) as usual
        rejections = self.app[METRICS].http_rejections
        return _Server(base, head_timeout_s=self._head_timeout_s, rejections=rejections)


async def serve(app: web.Application, settings: Settings, *, reuse_port: bool = False) -> None:
    """Serve `app` on settings.host:port until SIGINT or SIGTERM, then drain (as web.run_app does)."""
    runner = GatewayRunner(app, settings)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
