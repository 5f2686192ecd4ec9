"""Login by the admin token, session cookie flags, CSRF on every form, logout."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.console.app import create_console_app
from gateway.console.keys import ConsoleOptions
from gateway.console.session import COOKIE, Session, decode, derive_key, encode, token_matches
from shared.config import Settings
from shared.errors import ConfigError
from tests.console.conftest import ADMIN_TOKEN, Console, csrf_of, log_in


async def test_every_page_needs_a_login(console: Console) -> None:
    client = await console(login=False)
    for path in ("/", "/events", "/events/1", "/dead-letters", "/subscribers", "/policies", "/tss"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/login", path
    assert (await client.get("/login")).status == 200


async def test_the_admin_token_logs_in_and_a_wrong_one_does_not(console: Console) -> None:
    client = await console(login=False)
    assert await log_in(client, "not-the-token") == 401
    assert (await client.get("/events", allow_redirects=False)).status == 303
    assert await log_in(client) == 303
    response = await client.get("/events", allow_redirects=False)
    assert response.status == 200 and "Events" in await response.text()


async def test_a_form_without_its_csrf_token_is_refused(console: Console) -> None:
    client = await console(login=False)
    await client.get("/login")
    response = await client.post("/login", data={"token": ADMIN_TOKEN}, allow_redirects=False)
    assert response.status == 403
    response = await client.post("/login", data={"token": ADMIN_TOKEN, "csrf": "0" * 64}, allow_redirects=False)
    assert response.status == 403
    assert await log_in(client) == 303
    response = await client.post("/subscribers/disable", data={"name": "x"}, allow_redirects=False)
    assert response.status == 403


async def test_the_session_cookie_is_httponly_secure_and_samesite_strict(console: Console) -> None:
    client = await console(login=False, secure=True)
    first = await client.get("/login")
    anon = first.cookies[COOKIE]
    # A Secure cookie does not come back over the test's plain http: send it as a browser on https would.
    response = await client.post(
        "/login",
        data={"token": ADMIN_TOKEN, "csrf": csrf_of(await first.text())},
        headers={"Cookie": f"{COOKIE}={anon.value}"},
        allow_redirects=False,
    )
    assert response.status == 303
    for cookie in (anon, response.cookies[COOKIE]):
        assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert anon.value.startswith("anon.") and response.cookies[COOKIE].value.startswith("admin.")
    assert response.cookies[COOKIE].value.split(".")[2] != anon.value.split(".")[2]  # a new nonce on login


async def test_logout_ends_the_session(console: Console) -> None:
    client = await console()
    page = await (await client.get("/")).text()
    assert 'action="/logout"' in page
    response = await client.post("/logout", data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_pages_carry_security_headers(console: Console) -> None:
    client = await console()
    response = await client.get("/events")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_forged_expired_or_other_token_cookies_are_worthless() -> None:
    key = derive_key(ADMIN_TOKEN)
    good = encode(key, Session(admin=True, expires=2_000_000_000, nonce="n1"))
    assert decode(key, good, now=1_000_000_000) == Session(True, 2_000_000_000, "n1")
    assert decode(key, good, now=2_000_000_001) is None
    assert decode(derive_key("another token"), good, now=1_000_000_000) is None
    assert decode(key, good.replace("admin.", "anon.", 1), now=1_000_000_000) is None
    assert decode(key, "admin.2000000000.n1.deadbeef", now=1_000_000_000) is None
    assert decode(key, None, now=0) is None


def test_token_comparison() -> None:
    assert token_matches(ADMIN_TOKEN, ADMIN_TOKEN)
    assert not token_matches(ADMIN_TOKEN[:-1], ADMIN_TOKEN)
    assert not token_matches("", ADMIN_TOKEN)


def test_the_console_refuses_to_start_without_an_admin_token(settings: Settings) -> None:
    with pytest.raises(ConfigError) as e:
        create_console_app(dataclasses.replace(settings, admin_token=None), ConsoleOptions())
    assert e.value.variable == "CALLGATE_ADMIN_TOKEN"
