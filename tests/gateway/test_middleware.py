"""The last-resort answers: unknown routes and methods get the fixed error shape, never a drop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from shared.config import Settings

Gateway = Callable[[Settings], Awaitable[TestClient[web.Request, web.Application]]]


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
