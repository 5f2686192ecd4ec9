"""Login by the admin token, a signed session cookie, and a CSRF token on every form.

The cookie is `<kind>.<expires>.<nonce>.<mac>`: `anon` before login (it carries the login form's
CSRF token), `admin` after. Nothing is stored server-side; the signing key is derived from the
admin token, so changing the token ends every session. The CSRF token is a MAC of the session
nonce: a form from another session, or from before login, does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.console.keys import OPTIONS, SESSION_KEY

COOKIE = "callgate_console"
SESSION = web.RequestKey("console_session", object)
PUBLIC = frozenset({"/login", "/console.css", "/healthz"})
ANON_SECONDS = 3600
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Session:
    admin: bool
    expires: int
    nonce: str

    def csrf(self, key: bytes) -> str:
        return hmac.new(key, f"csrf.{self.nonce}".encode(), hashlib.sha256).hexdigest()


def derive_key(admin_token: str) -> bytes:
    """The cookie signing key: bound to the admin token (a new token ends every session)."""
    return hmac.new(admin_token.encode(), b"callgate-console-session-v1", hashlib.sha256).digest()


def token_matches(given: str, admin_token: str) -> bool:
    """Constant-time comparison (digests first, so the length does not leak either)."""
    a = hashlib.sha256(given.encode()).digest()
    b = hashlib.sha256(admin_token.encode()).digest()
    return hmac.compare_digest(a, b)


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def encode(key: bytes, session: Session) -> str:
    body = f"{'admin' if session.admin else 'anon'}.{session.expires}.{session.nonce}"
    return f"{body}.{_mac(key, body)}"


def decode(key: bytes, value: str | None, *, now: float) -> Session | None:
    """The session a cookie carries, or None when it is absent, forged or expired."""
    if not value or value.count(".") != 3:
        return None
    kind, expires, nonce, mac = value.split(".")
    if not hmac.compare_digest(mac, _mac(key, f"{kind}.{expires}.{nonce}")):
        return None
    if kind not in ("admin", "anon") or not expires.isdigit() or int(expires) <= now:
        return None
    return Session(admin=kind == "admin", expires=int(expires), nonce=nonce)


def new_session(*, admin: bool, seconds: float) -> Session:
    return Session(admin=admin, expires=int(time.time() + seconds), nonce=secrets.token_urlsafe(18))


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    options = request.app[OPTIONS]
    response.set_cookie(
        COOKIE,
        encode(request.app[SESSION_KEY], session),
        max_age=max(0, session.expires - int(time.time())),
        path="/",
        httponly=True,
        secure=not options.insecure_cookie,
        samesite="Strict",
    )


def current(request: web.Request) -> Session | None:
    found = request.get(SESSION)
    return found if isinstance(found, Session) else None


def csrf_token(request: web.Request) -> str:
    session = current(request)
    return "" if session is None else session.csrf(request.app[SESSION_KEY])


_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page needs an admin session and every POST a valid CSRF token; security headers."""
    key = request.app[SESSION_KEY]
    session = decode(key, request.cookies.get(COOKIE), now=time.time())
    fresh = session is None
    if session is None:
        session = new_session(admin=False, seconds=ANON_SECONDS)
    request[SESSION] = session
    if request.method == "POST":
        form = await request.post()
        if fresh or not hmac.compare_digest(str(form.get("csrf", "")), session.csrf(key)):
            raise web.HTTPForbidden(text="invalid or missing CSRF token: reload the page and try again")
    if request.path not in PUBLIC and not session.admin:
        if request.method != "GET":
            raise web.HTTPForbidden(text="not logged in")
        raise web.HTTPSeeOther("/login")
    response = await handler(request)
    response.headers.update(_HEADERS)
    if fresh and current(request) is session:
        set_cookie(request, response, session)
    return response
