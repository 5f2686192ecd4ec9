"""The route table: one entry per route; a provider's routes exist only when it is configured."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gateway import openapi
from gateway.handlers import (
    admin_orders,
    admin_policy,
    admin_replay,
    admin_subscribers,
    chainup,
    cobo_tss,
    cobo_ucw,
    cobo_waas,
    ops,
    uuwallet,
    wyre,
)
from gateway.handlers.admin_common import counted
from gateway.middleware import expect
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
    path_setting: str | None = None  # an attribute of the provider's settings that overrides `path`


ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", ops.healthz, "healthz", summary="Liveness"),
    Route("GET", "/readyz", ops.readyz, "readyz", summary="Readiness (Redis reachable)"),
    Route("GET", "/metrics", ops.metrics, "metrics", summary="Prometheus metrics of this process"),
    Route("GET", "/openapi.json", openapi.openapi_json, "openapi", summary="OpenAPI document of the enabled routes"),
    Route(
        "POST",
        "/wyre/v3/wallet-callbacks/{path_token}",
        wyre.wallet_callback,
        "wyre_wallet_callback",
        provider="wyre",
        summary="Wyre v3 wallet callback",
    ),
    # >>> provider routes (one block per provider)
    Route(
        "POST",
        "/cobo/tss-node/v2/check",
        cobo_tss.check,
        "cobo_tss_check",
        provider="cobo_tss",
        summary="Cobo TSS Node callback: approve or reject a TSS task (signed answer)",
        path_setting="check_path",
    ),
    Route(
        "POST",
        "/cobo/tss-node/v2/event",
        cobo_tss.event,
        "cobo_tss_event",
        provider="cobo_tss",
        summary="Cobo TSS Node event (enqueued)",
        path_setting="event_path",
    ),
    Route(
        "GET",
        "/cobo/tss-node/ping",
        cobo_tss.ping,
        "cobo_tss_ping",
        provider="cobo_tss",
        summary="Cobo TSS callback server health, as the templates answer it",
    ),
    Route(
        "POST",
        "/api/v1/wallets/{wallet_uuid}/tss/callback",
        cobo_ucw.tss_callback,
        "cobo_ucw_tss_callback",
        provider="cobo_ucw",
        summary="Cobo UCW TSS request callback (reconciled with WaaS)",
    ),
    Route(
        "POST",
        "/cobo/waas/webhooks",
        cobo_waas.webhook,
        "cobo_waas_webhook",
        provider="cobo_waas",
        summary="Cobo WaaS 2.0 webhooks (wallets.mpc.tss_request.* trigger reconciliation)",
    ),
    Route(
        "POST",
        "/uuwallet/callback",
        uuwallet.callback,
        "uuwallet_callback",
        provider="uuwallet",
        summary="UU Wallet WaaS callbacks (deposits, withdrawal results, address and withdrawal notices)",
    ),
    Route(
        "POST",
        "/uuwallet/withdraw-info",
        uuwallet.withdraw_info,
        "uuwallet_withdraw_info",
        provider="uuwallet",
        summary="UU Wallet withdrawal second confirmation (answered from the registered order)",
    ),
    # chainup
    Route(
        "POST",
        "/chainup/cosigner/withdraw",
        chainup.cosigner_withdraw,
        "chainup_cosigner_withdraw",
        provider="chainup_cosigner",
        summary="ChainUp MPC Co-Signer withdraw callback (sign_start, sign_success, verify_public_hash)",
    ),
    Route(
        "POST",
        "/chainup/cosigner/web3",
        chainup.cosigner_web3,
        "chainup_cosigner_web3",
        provider="chainup_cosigner",
        summary="ChainUp MPC Co-Signer Web3 callback (sign_start, sign_success)",
    ),
    Route(
        "POST",
        "/chainup/waas/notify",
        chainup.waas_notify,
        "chainup_waas_notify",
        provider="chainup_waas",
        summary="ChainUp Custody WaaS V2 / MPC deposit, withdrawal and Web3 notifications",
    ),
    Route(
        "POST",
        "/chainup/waas/withdraw-confirm",
        chainup.waas_withdraw_confirm,
        "chainup_waas_withdraw_confirm",
        provider="chainup_waas",
        summary="ChainUp Custody WaaS V2 withdrawal second confirmation",
    ),
    # expected-order registry (admin API; 404 unless CALLGATE_ADMIN_TOKEN is set)
    Route(
        "POST",
        "/admin/orders",
        admin_orders.add_order,
        "admin_orders_add",
        summary="Register an expected withdrawal (bearer CALLGATE_ADMIN_TOKEN)",
    ),
    Route(
        "GET",
        "/admin/orders",
        admin_orders.get_orders,
        "admin_orders_list",
        summary="List registered expected withdrawals, newest first (bearer CALLGATE_ADMIN_TOKEN)",
    ),
    # end expected-order registry
    # policy lifecycle (admin API; 404 unless CALLGATE_ADMIN_TOKEN is set)
    Route(
        "GET",
        "/admin/policy",
        admin_policy.show,
        "admin_policy_show",
        summary="Active and shadow policy versions, latest versions (bearer CALLGATE_ADMIN_TOKEN)",
    ),
    Route(
        "POST",
        "/admin/policy",
        admin_policy.publish_policy,
        "admin_policy_publish",
        summary="Publish the body as the next policy version, ?shadow=true beside the active one",
    ),
    Route(
        "POST",
        "/admin/policy/test",
        admin_policy.try_candidate,
        "admin_policy_test",
        summary="Decide the recorded decisions of a window under the body; what would change",
    ),
    Route(
        "POST",
        "/admin/policy/promote",
        admin_policy.promote_shadow,
        "admin_policy_promote",
        summary="Make the shadow policy version active",
    ),
    Route(
        "POST",
        "/admin/policy/rollback",
        admin_policy.roll_back,
        "admin_policy_rollback",
        summary="Make the previously active policy version active again",
    ),
    Route(
        "GET",
        "/admin/policy/diff",
        admin_policy.diff,
        "admin_policy_diff",
        summary="Rule-level difference between two stored policy versions (?old=A&new=B)",
    ),
    # end policy lifecycle
    # subscribers and replay (admin API; 404 unless CALLGATE_ADMIN_TOKEN is set)
    Route(
        "GET",
        "/admin/subscribers",
        admin_subscribers.list_subscribers,
        "admin_subscribers_list",
        summary="Notification subscribers with their breaker state; secrets are never listed",
    ),
    Route(
        "POST",
        "/admin/subscribers",
        admin_subscribers.create,
        "admin_subscribers_create",
        summary="Add a subscriber; the answer shows its whsec_ signing secret, once",
    ),
    Route(
        "POST",
        "/admin/subscribers/{name}/disable",
        admin_subscribers.disable,
        "admin_subscribers_disable",
        summary="Stop delivering to a subscriber (its notifications wait)",
    ),
    Route(
        "POST",
        "/admin/subscribers/{name}/enable",
        admin_subscribers.enable,
        "admin_subscribers_enable",
        summary="Deliver to a subscriber again",
    ),
    Route(
        "POST",
        "/admin/subscribers/{name}/rotate",
        admin_subscribers.rotate,
        "admin_subscribers_rotate",
        summary="New signing secret, shown once; the old one keeps signing beside it for the overlap",
    ),
    Route(
        "POST",
        "/admin/replay/notifications",
        admin_replay.replay_notifications,
        "admin_replay_notifications",
        summary="Deliver notifications again (same webhook-id) by id, subscriber and/or time range",
    ),
    Route(
        "GET",
        "/admin/dead-letters",
        admin_replay.list_dead_letters,
        "admin_dead_letters_list",
        summary="Open dead letters, newest first (?job=...&limit=N)",
    ),
    Route(
        "POST",
        "/admin/replay/dead-letters",
        admin_replay.replay_dead_letters,
        "admin_replay_dead_letters",
        summary="Re-enqueue dead-lettered jobs by id",
    ),
    # end subscribers and replay
    # <<< provider routes
)


def enabled_routes(settings: Settings) -> list[Route]:
    return [r for r in ROUTES if r.provider is None or getattr(settings.providers, r.provider) is not None]


def route_path(route: Route, settings: Settings) -> str:
    """The route's path, or the configured one when the provider makes it configurable."""
    if route.path_setting is None or route.provider is None:
        return route.path
    return str(getattr(getattr(settings.providers, route.provider), route.path_setting))


def setup_routes(app: web.Application, settings: Settings) -> None:
    for route in enabled_routes(settings):
        # Every admin answer is counted by outcome: refused tokens and 503s show up on dashboards.
        handler = counted(route.handler) if route.path.startswith("/admin/") else route.handler
        app.router.add_route(route.method, route_path(route, settings), handler, name=route.name, expect_handler=expect)
