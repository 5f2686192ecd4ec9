"""The last-resort answers (unknown routes and methods get the fixed error shape, never a drop), and
the request id every log line of a request carries."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterator

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from callgate.demo import wyre_transaction
from callgate.embedded import free_port
from gateway.keys import METRICS
from gateway.middleware import observe
from shared.config import Settings
from shared.logging import JsonFormatter, correlation_id
from shared.metrics import Metrics
from tests.conftest import WYRE_TOKEN, AiohttpClient, sample_value

Gateway = Callable[[Settings], Awaitable[TestClient[web.Request, web.Application]]]
URL = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"


async def test_unknown_route_and_wrong_method_get_json_errors_with_a_request_id(
    gateway: Gateway, settings: Settings
) -> None:
    client = await gateway(settings)
    missing = await client.get("/no/such/route")
    assert missing.status == 404
    assert await missing.json() == {"error": "not_found", "detail": "Not Found"}
    assert missing.headers["X-Request-Id"]
    wrong = await client.get("/wyre/v3/wallet-callbacks/anything")
    assert wrong.status == 405
    assert wrong.headers["Allow"] == "POST"
    assert (await wrong.json())["error"] == "method_not_allowed"
    echoed = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["X-Request-Id"] == "abc-123"


class _JsonLines(logging.Handler):
    """Formats at emit time, in the context of the code that logged (as a real handler would)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))


@pytest.fixture
def json_lines() -> Iterator[_JsonLines]:
    handler = _JsonLines()
    for name in ("test.correlation", "gateway.ingest"):
        logging.getLogger(name).addHandler(handler)
    yield handler
    for name in ("test.correlation", "gateway.ingest"):
        logging.getLogger(name).removeHandler(handler)


async def _logs_its_correlation_id(request: web.Request) -> web.Response:
    logging.getLogger("test.correlation").warning("inside the handler")
    await asyncio.sleep(0)  # still the request's own id after a suspension
    return web.json_response({"correlation_id": correlation_id.get()})


async def test_each_request_logs_with_its_own_id_and_it_does_not_leak(
    aiohttp_client: AiohttpClient, json_lines: _JsonLines
) -> None:
    app = web.Application(middlewares=[observe])
    app[METRICS] = metrics = Metrics()
    app.router.add_get("/cid", _logs_its_correlation_id, name="cid")
    client = await aiohttp_client(app)
    given = await client.get("/cid", headers={"X-Request-Id": "abc-123"})
    # The next request on the same keep-alive connection, without an id of its own.
    generated = await client.get("/cid")
    assert (await given.json())["correlation_id"] == "abc-123"
    own = generated.headers["X-Request-Id"]
    assert (await generated.json())["correlation_id"] == own and own != "abc-123"
    assert [line["correlation_id"] for line in json_lines.lines] == ["abc-123", own]
    assert correlation_id.get() is None  # nothing reached the test's own context
    assert sample_value(metrics, "callgate_request_duration_seconds_count", {"route": "cid"}) == 2


async def test_a_batch_serving_many_requests_logs_with_none_of_their_ids(
    gateway: Gateway, settings: Settings, json_lines: _JsonLines
) -> None:
    # Redis unreachable: the ingest batch logs that it spools, on behalf of every request in it.
    port = free_port()  # nothing answers there
    client = await gateway(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{port}/0"))
    body = wyre_transaction("PENDING", "TR_CORRELATION1")
    response = await client.post(URL, data=body, headers={"X-Request-Id": "req-1", "Content-Type": "application/json"})
    assert response.status == 200 and (await response.json())["status"] == "spooled"
    spooling = [line for line in json_lines.lines if "spooling" in str(line["msg"])]
    assert spooling and all("correlation_id" not in line for line in spooling)


async def test_an_unknown_expectation_gets_our_417_counted_and_100_continue_still_works(
    gateway: Gateway, settings: Settings
) -> None:
    """aiohttp would answer an unknown `Expect` in plain text before any middleware, unseen by logs
    and metrics; ours answers the fixed error shape with a request id, and counts it. The
    handshake curl and other clients use for large bodies (100-continue) still reaches the route."""
    client = await gateway(settings)
    metrics = client.app[METRICS]
    odd = await client.post(URL, data=b"{}", headers={"Expect": "something-odd", "X-Request-Id": "caller-7"})
    assert odd.status == 417
    assert await odd.json() == {"error": "expectation_failed", "detail": "only Expect: 100-continue is supported"}
    assert odd.headers["X-Request-Id"] == "caller-7"  # the caller's id, as on every other answer
    assert sample_value(metrics, "callgate_http_rejections_total", {"reason": "bad_expect"}) == 1
    # Nothing was recorded for it: the handler never ran.
    assert sample_value(metrics, "callgate_callbacks_total", {"provider": "wyre", "outcome": "accepted"}) == 0
    body = wyre_transaction("PENDING", "TR_EXPECT100")
    handshake = await client.post(URL, data=body, expect100=True, headers={"Content-Type": "application/json"})
    assert handshake.status == 200, await handshake.text()
    assert (await handshake.json())["status"] == "accepted"
    assert sample_value(metrics, "callgate_http_rejections_total", {"reason": "bad_expect"}) == 1
