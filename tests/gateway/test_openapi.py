"""GET /openapi.json documents exactly the routes the router serves, and the answers they give."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.openapi import document
from gateway.routes import setup_routes
from shared.config import Settings

Gateway = Callable[[Settings], Awaitable[TestClient[web.Request, web.Application]]]
_METHODS = {"get", "post", "put", "patch", "delete"}


def _all_providers_env(tmp_path: Path) -> dict[str, str]:
    """Every provider enabled through its real variables, with keys made here."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "private.pem"
    public = tmp_path / "public.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return {
        "CALLGATE_ADMIN_TOKEN": secrets.token_hex(16),
        "CALLGATE_WYRE_PATH_TOKEN": secrets.token_hex(16),
        "CALLGATE_COBO_TSS_NODE_PUBLIC_KEY_FILE": str(public),
        "CALLGATE_COBO_TSS_PRIVATE_KEY_FILE": str(private),
        "CALLGATE_COBO_TSS_EVENT_PUBLIC_KEY_FILE": str(public),
        "CALLGATE_COBO_TSS_CHECK_PATH": "/tss/check-moved",  # a configured path is the documented one
        "CALLGATE_COBO_WAAS_API_SECRET": secrets.token_hex(32),
        "CALLGATE_UCW_API_KEYS": secrets.token_hex(16),
        "CALLGATE_CHAINUP_COSIGNER_TOKEN": secrets.token_hex(16),
        "CALLGATE_CHAINUP_APP_ID": "app-1",
        "CALLGATE_CHAINUP_PUBLIC_KEY_FILE": str(public),
        "CALLGATE_CHAINUP_MERCHANT_PRIVATE_KEY_FILE": str(private),
        "CALLGATE_UUWALLET_API_KEYS": secrets.token_hex(16),
        "CALLGATE_UUWALLET_PUBLIC_KEY_FILE": str(public),
    }


def _all_providers(settings: Settings, tmp_path: Path) -> Settings:
    loaded = Settings.from_env(_all_providers_env(tmp_path))
    return dataclasses.replace(settings, admin_token=loaded.admin_token, providers=loaded.providers)


def _router_routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and isinstance(path, str):
            routes.add((route.method, path))
    return routes


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item if method in _METHODS}


def test_every_enabled_route_is_documented_and_nothing_else(settings: Settings, tmp_path: Path) -> None:
    for variant in (settings, _all_providers(settings, tmp_path)):
        app = web.Application()
        setup_routes(app, variant)
        assert _documented(document(variant)) == _router_routes(app)
    everything = _all_providers(settings, tmp_path)
    assert "/tss/check-moved" in document(everything)["paths"]
    assert len(everything.enabled_providers()) >= 6


def test_document_is_valid_openapi(settings: Settings, tmp_path: Path) -> None:
    validator = pytest.importorskip("openapi_spec_validator", reason="openapi-spec-validator is in the test extras")
    validator.validate(document(_all_providers(settings, tmp_path)))


async def test_served_document_matches_the_served_routes(gateway: Gateway, settings: Settings) -> None:
    client = await gateway(settings)
    response = await client.get("/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert _documented(doc) == _router_routes(client.app)
    assert doc["paths"]["/openapi.json"]["get"]["operationId"] == "openapi"


def _concrete(path: str) -> str:
    return path.replace("{", "x").replace("}", "")


async def test_refusals_of_garbage_are_documented_answers(gateway: Gateway, settings: Settings, tmp_path: Path) -> None:
    """Send every documented operation a request it must refuse (or a plain GET) on the real app."""
    client = await gateway(_all_providers(settings, tmp_path))
    doc = (await (await client.get("/openapi.json")).json())["paths"]
    seen = 0
    for path, item in doc.items():
        for method, operation in item.items():
            response = await client.request(method.upper(), _concrete(path), data=b"\x00not a callback")
            documented = set(operation["responses"])
            status = str(response.status)
            assert status in documented or f"{status[0]}XX" in documented, (method, path, status, documented)
            seen += 1
    assert seen == len(_documented({"paths": doc})) >= 15


def _declared(operation: dict[str, Any], status: int, content_type: str) -> bool:
    """Whether `operation` lists `status` answered in `content_type`."""
    answer = operation["responses"].get(str(status), {})
    return content_type in answer.get("content", {})


async def _send_everywhere(
    client: TestClient[web.Request, web.Application], token: str, body: bytes, headers: dict[str, str]
) -> list[tuple[str, str, int, str, bool]]:
    """Each documented operation sent `body` and `headers` with the admin token: (method, path,
    status, content type, whether the document declares that status in that content type)."""
    doc = (await (await client.get("/openapi.json")).json())["paths"]
    answers = []
    for path, item in doc.items():
        for method, operation in item.items():
            response = await client.request(
                method.upper(), _concrete(path), data=body, headers={"Authorization": f"Bearer {token}", **headers}
            )
            status, content_type = response.status, response.content_type
            answers.append((method, path, status, content_type, _declared(operation, status, content_type)))
    assert len(answers) >= 15
    return answers


async def test_an_unknown_expectation_is_a_declared_417(gateway: Gateway, settings: Settings, tmp_path: Path) -> None:
    """aiohttp's router answers an Expect it does not know (HTTP/1.1) itself, before the middleware
    and any handler: every operation declares that 417, in the content type it comes in."""
    everything = _all_providers(settings, tmp_path)
    assert everything.admin_token is not None
    client = await gateway(everything)
    answers = await _send_everywhere(client, everything.admin_token, b"{}", {"Expect": "something-odd"})
    assert {status for _, _, status, _, _ in answers} == {417}
    assert [a for a in answers if not a[4]] == []


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"x" * 2048, {}, 413),  # over CALLGATE_MAX_BODY_BYTES
        (b"not gzip at all", {"Content-Encoding": "gzip"}, 400),  # a body aiohttp cannot decode
    ],
    ids=["over-the-cap", "undecodable"],
)
async def test_the_middlewares_body_refusals_are_declared(
    gateway: Gateway, settings: Settings, tmp_path: Path, body: bytes, headers: dict[str, str], status: int
) -> None:
    """Routes answering their own protocol elsewhere still meet the middleware's JSON refusals of a
    body it cannot take; each answer is one its operation declares."""
    everything = dataclasses.replace(_all_providers(settings, tmp_path), max_body_bytes=1024)
    assert everything.admin_token is not None
    client = await gateway(everything)
    answers = await _send_everywhere(client, everything.admin_token, body, headers)
    assert [a for a in answers if not a[4]] == []
    refused = {path for _, path, code, content_type, _ in answers if code == status}
    assert "/cobo/waas/webhooks" in refused  # it reads the body first: the middleware answers
    assert "/admin/orders" in refused


async def test_uuwallet_answers_a_body_over_the_cap_in_its_declared_envelope_only(
    gateway: Gateway, settings: Settings, tmp_path: Path
) -> None:
    """UU Wallet answers its own 413 (the WaaS reads errCode), so its operations declare no other."""
    everything = dataclasses.replace(_all_providers(settings, tmp_path), max_body_bytes=1024)
    uu = everything.providers.uuwallet
    assert uu is not None
    client = await gateway(everything)
    doc = (await (await client.get("/openapi.json")).json())["paths"]
    for path in ("/uuwallet/callback", "/uuwallet/withdraw-info"):
        declared = doc[path]["post"]["responses"]["413"]["content"]
        assert list(declared) == ["application/json"] and "anyOf" not in declared["application/json"]["schema"]
        envelope = declared["application/json"]["schema"]["required"]
        response = await client.post(path, data=b"x" * 2048, headers={"X-API-KEY": uu.api_keys[0]})
        answer = await response.json()
        assert (response.status, sorted(answer), answer["errCode"] != 0) == (413, sorted(envelope), True)
