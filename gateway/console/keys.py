"""Typed keys of the console application (a separate app from the gateway's; see docs/console.md)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import jinja2
from aiohttp import web
from arq.connections import ArqRedis


@dataclass(frozen=True, slots=True)
class ConsoleOptions:
    """How the console serves: from `callgate console` flags (the gateway's Settings carry the rest)."""

    host: str = "127.0.0.1"
    port: int = 8081
    # Browsers drop Secure cookies over plain http: only for a console on localhost without TLS.
    insecure_cookie: bool = False
    session_hours: float = 8.0
    page_size: int = 50


OPTIONS = web.AppKey("console_options", ConsoleOptions)
POOL = web.AppKey("console_pool", asyncpg.Pool)
REDIS = web.AppKey("console_redis", ArqRedis)  # an arq pool: replays enqueue through it
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
SESSION_KEY = web.AppKey("console_session_key", bytes)
