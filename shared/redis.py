"""Redis connections, configured one way for every process."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str, *, timeout_s: float) -> Redis:
    """A client that fails fast: a callback waits at most `timeout_s` before it is spooled.

    No automatic retries: the ingest path decides what a failure means (spool, 503).
    """
    client: Redis = Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
        decode_responses=False,
        max_connections=64,
    )
    return client
