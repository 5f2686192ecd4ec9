"""The OpenAPI 3.1 document of the routes this gateway serves, at `GET /openapi.json`.

Generated from the route table (the enabled routes and their configured paths), so it lists
exactly what the router serves; each route's request and answers come from `SPECS` by route
name. Providers answer in their own protocols (text tokens, `SUCCESS`/`FAILURE`, encrypted
envelopes), so those answers are described as the provider expects them, not as our error shape.
A route with no entry in `SPECS` yet is documented from its table entry with generic answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

# The limits the admin handlers check, so that the document cannot drift from them.
from gateway.handlers.admin_common import NAME
from gateway.handlers.admin_replay import MAX_IDS
from gateway.handlers.admin_subscribers import MAX_OVERLAP_HOURS
from gateway.keys import SETTINGS
from shared.config import Settings
from shared.notify import replay

if TYPE_CHECKING:
    from gateway.routes import Route

Schema = dict[str, Any]

ERROR: Schema = {"$ref": "#/components/schemas/Error"}
_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, *values: str) -> Schema:
    schema: Schema = {"type": "string", "enum": list(values)} if values else {"type": "string"}
    return {"description": description, "content": {"text/plain": {"schema": schema}}}


def _error(description: str) -> Schema:
    return _json(description, ERROR)


def _obj(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    return {"type": "object", "required": list(required), "properties": properties}


_STR: Schema = {"type": "string"}
_UNAVAILABLE = _error("Nothing durable could take the callback now (Redis and the spool): resend it.")

# What the HTTP layer answers before or around any handler, in no provider's protocol (the head
# is not parsed yet, or the handler never runs): gateway/server.py refuses a malformed head (400)
# or one over the parser's limits (431) and cuts a late one (408); every route's expect handler
# (gateway/middleware.py::expect) refuses an `Expect` other than 100-continue on HTTP/1.1 (417)
# before the middleware runs; the middleware cuts a late body (408). Every operation can meet these.
_TRANSPORT: dict[str, Schema] = {
    "400": _error("Malformed HTTP request head (the server's answer, before any handler)."),
    "408": _error("The request head or body did not arrive in time."),
    "417": _error("An Expect header other than 100-continue (HTTP/1.1)."),
    "431": _error("Request head over the server's limits."),
}
# And where the handler reads a body: the middleware's answers to one aiohttp cannot read (a
# false Content-Encoding, a broken chunk) or that is over CALLGATE_MAX_BODY_BYTES.
_BODY_TRANSPORT: dict[str, Schema] = {
    "400": _error("Malformed HTTP request head, or a body that cannot be read (the server's answer)."),
    "413": _error("Body over CALLGATE_MAX_BODY_BYTES (the server's answer)."),
}


@dataclass(frozen=True, slots=True)
class Spec:
    """A route's request body, answers and security, by status code."""

    responses: dict[str, Schema]
    request: Schema | None = None
    security: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())
    # Body refusals (`_BODY_TRANSPORT` statuses) the handler answers in its own protocol, so the
    # middleware's answer for them never reaches the client.
    own_body_refusals: frozenset[str] = frozenset()


_FORM_JWT = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": _obj(("TSS_JWT_MSG",), TSS_JWT_MSG={"type": "string", "description": "RS256 JWT (node key)"})
        }
    },
}
_COSIGNER_REQUEST = {
    "required": True,
    "content": {"application/json": {"schema": _obj(("type", "request_id"), type=_STR, request_id=_STR)}},
}
_CHAINUP_FORM = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": _obj(("app_id", "data"), app_id=_STR, data={"type": "string", "description": "RSA ciphertext"})
        }
    },
}
_UU_BODY = {
    "required": True,
    "content": {"text/plain": {"schema": {"type": "string", "description": "Base64 RSA ciphertext (WaaS key)"}}},
}
_UU_ANSWER = _obj(
    ("errCode", "message", "data"),
    errCode={"type": "integer", "description": "0 OK; other codes refuse"},
    message=_STR,
    data={"type": "string", "description": "encrypted with the WaaS public key, or empty"},
)
_UCW_ENVELOPE = _obj(
    ("success",),
    success={"type": "boolean"},
    # null in refusals (401, 400): nothing to report on
    result={
        **_obj(tss_request_id=_STR, status={"type": "integer"}, waas_status_snapshot={"type": "object"}),
        "type": ["object", "null"],
    },
    suggestion=_STR,
    message=_STR,
    meta={"type": ["object", "null"]},
)
_ORDER = _obj(
    ("provider", "order_ref", "chain", "asset", "destination", "amount"),
    provider=_STR,
    order_ref=_STR,
    chain=_STR,
    asset=_STR,
    destination=_STR,
    amount={"type": "string", "description": "a positive decimal, as a string"},
    expires_at={"type": "number", "description": "Unix seconds"},
    expires_in={"type": "number", "description": "seconds from now"},
    extras={"type": "object", "additionalProperties": {"type": "string"}},
)
_ADMIN_ERRORS = {
    "401": _error("Missing or wrong bearer token."),
    "404": _error("The admin API is disabled (CALLGATE_ADMIN_TOKEN unset)."),
    "503": _error("The registry cannot be reached now; retry."),
}


def _uuwallet(ok: str, unavailable: str) -> Spec:
    """UU Wallet answers every request with its own envelope, whatever the status."""
    return Spec(
        {
            "200": _json(ok, _UU_ANSWER),
            "400": _json("Undecryptable or invalid request.", _UU_ANSWER),
            "401": _json("Wrong X-API-KEY.", _UU_ANSWER),
            "413": _json("Body over CALLGATE_UUWALLET_MAX_BODY_BYTES or CALLGATE_MAX_BODY_BYTES.", _UU_ANSWER),
            "503": _json(unavailable, _UU_ANSWER),
        },
        request=_UU_BODY,
        security=("uuwalletApiKey",),
        own_body_refusals=frozenset({"413"}),
    )


_COSIGNER = Spec(
    {
        "200": _text("SUCCESS approves/acknowledges; FAILURE rejects.", "SUCCESS", "FAILURE"),
        "400": _text("Invalid callback.", "FAILURE"),
        "403": _text("Token or source address refused.", "FAILURE"),
        "503": _text("Not recorded now; the co-signer retries.", "FAILURE"),
    },
    request=_COSIGNER_REQUEST,
)


_POLICY_TEXT = {
    "required": True,
    "content": {"application/yaml": {"schema": _STR}, "application/json": {"schema": {"type": "object"}}},
}


def _admin(ok: dict[str, Schema], *, request: Schema | None = None, **errors: str) -> Spec:
    """An admin route: JSON answers, the fixed error shape (400 and the given ones), the bearer token."""
    refusals = {"400": _error("A bad parameter or body (named).")}
    refusals |= {status.removeprefix("e"): _error(text) for status, text in errors.items()}
    unavailable = {"503": _error("PostgreSQL or Redis cannot be reached now; retry (the detail says what was done).")}
    responses = {**ok, **refusals, **_ADMIN_ERRORS, **unavailable}
    return Spec(responses, request=request, security=("adminToken",), tags=("admin",))


def _admin_policy(ok: dict[str, Schema], *, request: Schema | None = None) -> Spec:
    """The admin policy API: an admin route that also refuses a document or an operation (422)."""
    return _admin(ok, request=request, e422="Refused: the document or the operation does not pass its checks.")


def _json_body(schema: Schema, *, required: bool = True) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


_TIME: Schema = {"type": "string", "format": "date-time"}
_SUBSCRIBER = _obj(
    ("id", "name", "url", "event_types", "enabled"),
    id={"type": "integer"},
    name=_STR,
    url=_STR,
    event_types={"type": "array", "items": _STR, "description": "exact types, `provider.*` or `*`; [] = all"},
    enabled={"type": "boolean"},
    disabled_reason={"type": ["string", "null"]},
    created_at=_TIME,
    previous_secret_expires_at={"type": ["string", "null"], "format": "date-time"},
    breaker={"type": ["string", "null"], "enum": ["closed", "open", "half_open", None]},
)
_SECRET = {"secret": {"type": "string", "description": "the whsec_ signing secret: shown in this answer only"}}
_WITH_SECRET: Schema = {**_SUBSCRIBER, "properties": {**_SUBSCRIBER["properties"], **_SECRET}}
_NO_SUBSCRIBER = "No subscriber of that name."
_REPLAY_SELECTION = _obj(
    (),
    ids={"type": "array", "items": _STR, "maxItems": MAX_IDS, "description": "notification ids (webhook-id)"},
    subscriber=_STR,
    since={**_TIME, "description": "created at or after (ISO 8601; UTC when no offset)"},
    until={**_TIME, "description": "created before"},
    statuses={"type": "array", "items": {"enum": list(replay.STATUSES)}},
)
_DEAD_LETTER = _obj(
    ("id", "job", "ref", "reason", "created_at"),
    id={"type": "integer"},
    job=_STR,
    ref=_STR,
    reason=_STR,
    created_at=_TIME,
)

SPECS: dict[str, Spec] = {
    "healthz": Spec({"200": _json("The process answers.", _obj(("status",), status=_STR))}, tags=("operations",)),
    "readyz": Spec(
        {
            "200": _json("Redis answers.", _obj(("status",), status=_STR, redis={"type": "boolean"})),
            "503": _json("Redis does not answer (acks go to the spool).", _obj(("status",), status=_STR)),
        },
        tags=("operations",),
    ),
    "metrics": Spec(
        {"200": _text("Prometheus text exposition of this process's metrics.")},
        tags=("operations",),
    ),
    "openapi": Spec({"200": _json("This document.", {"type": "object"})}, tags=("operations",)),
    "wyre_wallet_callback": Spec(
        {
            "200": _json("Recorded (or a duplicate of a recorded one).", _obj(("status", "id"), status=_STR, id=_STR)),
            "400": _error("Not a valid Wyre transaction."),
            "401": _error("Bad X-Api-Signature."),
            "404": _error("Wrong path token."),
            "413": _error("Body over the cap."),
            "503": _UNAVAILABLE,
        },
        request={"required": True, "content": {"application/json": {"schema": _obj(("id", "status"), id=_STR)}}},
    ),
    "cobo_tss_check": Spec(
        {
            "200": _text(
                "RS256 JWT by our key; package_data = {request_id, status, action, error}. A body over the cap"
                " is answered here too, with status 10 (invalid request)."
            )
        },
        request=_FORM_JWT,
        own_body_refusals=frozenset({"413"}),
    ),
    "cobo_tss_event": Spec(
        {
            "200": _json("Recorded.", _STR),
            "400": _json("Invalid event token or body.", _STR),
            "404": _error("Events are off (no event public key configured)."),
            "503": _json("Not recorded now; resend.", _STR),
        },
        request=_FORM_JWT,
    ),
    "cobo_tss_ping": Spec({"200": _json("Callback server health.", _obj(server=_STR, timestamp=_STR))}),
    "cobo_ucw_tss_callback": Spec(
        {
            "200": _json("Recorded; result carries the reconciled WaaS state when known.", _UCW_ENVELOPE),
            "401": _json("Invalid or missing X-API-Key.", _UCW_ENVELOPE),
            "404": _json("Unknown wallet.", _UCW_ENVELOPE),
            "413": _json("Body over the cap.", _UCW_ENVELOPE),
            "422": _json("Invalid report.", _UCW_ENVELOPE),
            "503": _json("Not recorded now; retry.", _UCW_ENVELOPE),
        },
        request={"required": True, "content": {"application/json": {"schema": _obj(("tss_request_id", "status"))}}},
        security=("ucwApiKey",),
        own_body_refusals=frozenset({"413"}),
    ),
    "cobo_waas_webhook": Spec(
        {
            "200": _json("Recorded, duplicate or ignored.", _obj(("status",), status=_STR)),
            "400": _error("Not a valid webhook event."),
            "401": _error("Bad or stale Ed25519 signature."),
            "413": _error("Body over the cap."),
            "503": _error("Not recorded now; Cobo retries."),
        },
        request={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    ),
    "chainup_cosigner_withdraw": _COSIGNER,
    "chainup_cosigner_web3": _COSIGNER,
    "chainup_waas_notify": Spec(
        {
            "200": _text("Recorded.", "SUCCESS", "FAILURE"),
            "400": _text("Undecryptable or invalid data.", "FAILURE"),
            "403": _text("Unknown app_id.", "FAILURE"),
            "503": _text("Not recorded now; ChainUp retries.", "FAILURE"),
        },
        request=_CHAINUP_FORM,
    ),
    "chainup_waas_withdraw_confirm": Spec(
        {
            "200": {
                "description": "Encrypted confirmation answer (with check_sum), or FAILURE to refuse.",
                "content": {"application/json": {"schema": {"type": "object"}}, "text/plain": {"schema": _STR}},
            },
            "400": _text("Undecryptable or invalid data.", "FAILURE"),
            "403": _text("Unknown app_id.", "FAILURE"),
        },
        request=_CHAINUP_FORM,
    ),
    "uuwallet_callback": _uuwallet("errCode 0 once recorded.", "Not recorded now; the WaaS retries."),
    "uuwallet_withdraw_info": _uuwallet(
        "Approved (errCode 0) or rejected, from the registered order and the policy.",
        "Cannot answer now (fails closed).",
    ),
    "admin_policy_show": _admin_policy(
        {"200": _json("Active and shadow versions, latest versions.", {"type": "object"})}
    ),
    "admin_policy_publish": _admin_policy(
        {
            "200": _json("The same document is already active.", {"type": "object"}),
            "201": _json("Stored and announced as the next version.", {"type": "object"}),
        },
        request=_POLICY_TEXT,
    ),
    "admin_policy_test": _admin_policy(
        {"200": _json("Recorded decisions replayed under the body: what would change.", {"type": "object"})},
        request=_POLICY_TEXT,
    ),
    "admin_policy_promote": _admin_policy(
        {
            "200": _json("Already active.", {"type": "object"}),
            "201": _json("The shadow version is active (as a new version).", {"type": "object"}),
            "409": _error("No shadow version to promote."),
        }
    ),
    "admin_policy_rollback": _admin_policy(
        {
            "200": _json("Already active.", {"type": "object"}),
            "201": _json("The previous version is active again (as a new version).", {"type": "object"}),
            "409": _error("No earlier version to roll back to."),
        }
    ),
    "admin_policy_diff": _admin_policy(
        {"200": _json("Rule-level difference between the two versions.", {"type": "object"})}
    ),
    "admin_orders_add": Spec(
        {
            "200": _json("Already registered with the same content.", _ORDER),
            "201": _json("Registered.", _ORDER),
            "400": _error("Invalid order (the field is named)."),
            "409": _error("The order_ref is registered with different content."),
            **_ADMIN_ERRORS,
        },
        request={"required": True, "content": {"application/json": {"schema": _ORDER}}},
        security=("adminToken",),
        tags=("admin",),
    ),
    "admin_orders_list": Spec(
        {
            "200": _json("Newest first.", _obj(("orders",), orders={"type": "array", "items": _ORDER})),
            "400": _error("Bad limit."),
            **_ADMIN_ERRORS,
        },
        security=("adminToken",),
        tags=("admin",),
    ),
    "admin_subscribers_list": _admin(
        {
            "200": _json(
                "Oldest first; no secrets.", _obj(("subscribers",), subscribers={"type": "array", "items": _SUBSCRIBER})
            )
        }
    ),
    "admin_subscribers_create": _admin(
        {"201": _json("Created; the signing secret is shown here only.", _WITH_SECRET)},
        request=_json_body(
            _obj(
                ("name", "url"),
                name={"type": "string", "pattern": f"^{NAME.pattern}$"},
                url={"type": "string", "description": "absolute http(s) URL"},
                event_types={"type": "array", "items": _STR},
                secret={"type": "string", "description": "a whsec_ secret to use instead of a generated one"},
            )
        ),
        e409="A subscriber of that name exists.",
    ),
    "admin_subscribers_disable": _admin(
        {"200": _json("Disabled.", _SUBSCRIBER)},
        request=_json_body(_obj((), reason=_STR), required=False),
        e404=_NO_SUBSCRIBER,
    ),
    "admin_subscribers_enable": _admin(
        {"200": _json("Enabled.", _SUBSCRIBER)},
        request=_json_body(_obj(()), required=False),  # read and refused (400) unless empty or {}
        e404=_NO_SUBSCRIBER,
    ),
    "admin_subscribers_rotate": _admin(
        {"200": _json("The new secret, shown here only; the old one signs beside it until expiry.", _WITH_SECRET)},
        request=_json_body(
            _obj((), overlap_hours={"type": "number", "minimum": 0, "maximum": MAX_OVERLAP_HOURS}), required=False
        ),
        e404=_NO_SUBSCRIBER,
    ),
    "admin_replay_notifications": _admin(
        {
            "200": _json(
                "Reset and enqueued (a no-op for attempts already queued).",
                _obj(
                    ("replayed", "count"),
                    replayed={"type": "array", "items": _obj(("id", "attempt"), id=_STR, attempt={"type": "integer"})},
                    count={"type": "integer"},
                ),
            )
        },
        request=_json_body(_REPLAY_SELECTION),
    ),
    "admin_dead_letters_list": _admin(
        {"200": _json("Newest first.", _obj(("dead_letters",), dead_letters={"type": "array", "items": _DEAD_LETTER}))}
    ),
    "admin_replay_dead_letters": _admin(
        {
            "200": _json(
                "Re-enqueued; ids that are not open dead letters are listed in not_open.",
                _obj(
                    ("replayed", "not_open"),
                    replayed={"type": "array", "items": _obj(("id", "job"), id={"type": "integer"}, job=_STR)},
                    not_open={"type": "array", "items": {"type": "integer"}},
                ),
            )
        },
        request=_json_body(_obj(("ids",), ids={"type": "array", "items": {"type": "integer"}, "maxItems": MAX_IDS})),
    ),
}

_SECURITY_SCHEMES = {
    "adminToken": {"type": "http", "scheme": "bearer", "description": "CALLGATE_ADMIN_TOKEN"},
    "ucwApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "uuwalletApiKey": {"type": "apiKey", "in": "header", "name": "X-API-KEY"},
}


def _generic(route: Route) -> Spec:
    responses = {"200": {"description": "Handled."}, "4XX": {"description": "Refused (provider protocol)."}}
    if route.method == "POST":
        responses["503"] = {"description": "Not recorded now; resend."}
    request: Schema | None = {"content": {"*/*": {"schema": {}}}} if route.method == "POST" else None
    return Spec(responses, request=request)


def _also(answer: Schema, transport: Schema) -> Schema:
    """A route's own answer for a status, widened to the transport's answer for the same status."""
    content = dict(answer.get("content", {}))
    for media, entry in transport["content"].items():
        own = content.get(media)
        if own is None:
            content[media] = entry
        elif own["schema"] != entry["schema"]:
            content[media] = {"schema": {"anyOf": [own["schema"], entry["schema"]]}}
    return {"description": f"{answer['description']} Or: {transport['description']}", "content": content}


def _responses(spec: Spec) -> dict[str, Schema]:
    """The route's answers and the HTTP layer's (`_TRANSPORT`) for the same operation."""
    body = {status: a for status, a in _BODY_TRANSPORT.items() if status not in spec.own_body_refusals}
    transport = _TRANSPORT | body if spec.request is not None else _TRANSPORT
    responses = dict(spec.responses)
    for status, answer in transport.items():
        if status in responses:
            responses[status] = _also(responses[status], answer)
        elif f"{status[0]}XX" not in responses:  # a declared range already covers the status
            responses[status] = answer
    return dict(sorted(responses.items()))


def _operation(route: Route, spec: Spec) -> Schema:
    operation: Schema = {
        "operationId": route.name,
        "summary": route.summary or route.name,
        "tags": list(spec.tags or ((route.provider,) if route.provider else ("operations",))),
        "responses": _responses(spec),
    }
    params = _PARAM.findall(route.path)
    if params:
        operation["parameters"] = [{"name": p, "in": "path", "required": True, "schema": _STR} for p in params]
    if spec.request is not None:
        operation["requestBody"] = spec.request
    if spec.security:
        operation["security"] = [{name: []} for name in spec.security]
    return operation


def document(settings: Settings) -> Schema:
    """The document for the routes `settings` enables, at their configured paths."""
    # Imported here: gateway.routes imports this module for the /openapi.json handler.
    from gateway.routes import enabled_routes, route_path

    paths: dict[str, Schema] = {}
    for route in enabled_routes(settings):
        path = _PARAM.sub(r"{\1}", route_path(route, settings))
        spec = SPECS.get(route.name) or _generic(route)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, spec)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "callgate",
            "version": _version(),
            "description": "Inbound callback gateway for crypto custody and WaaS providers.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": _obj(("error", "detail"), error=_STR, detail=_STR)},
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("callgate")
    except PackageNotFoundError:
        return "0.0.0"


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app[SETTINGS]))
