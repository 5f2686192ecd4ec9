"""The route table: one entry per route; a provider's routes exist only when it is configured."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.handlers import ops, wyre
from shared.config import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    name: str
    provider: str | None = None  # the ProviderSettings field that enables it; None: always on
    summary: str = ""


ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", ops.healthz, "healthz", summary="Liveness"),
    Route("GET", "/readyz", ops.readyz, "readyz", summary="Readiness (Redis reachable)"),
    Route("GET", "/metrics", ops.metrics, "metrics", summary="Prometheus metrics of this process"),
    Route(
        "POST",
        "/wyre/v3/wallet-callbacks/{path_token}",
        wyre.wallet_callback,
        "wyre_wallet_callback",
        provider="wyre",
        summary="Wyre v3 wallet callback",
    ),
    # >>> provider routes (one block per provider)
    # <<< provider routes
)


def enabled_routes(settings: Settings) -> list[Route]:
    return [r for r in ROUTES if r.provider is None or getattr(settings.providers, r.provider) is not None]


def setup_routes(app: web.Application, settings: Settings) -> None:
    for route in enabled_routes(settings):
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
