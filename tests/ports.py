"""A local port nothing listens on, for tests of an unreachable service."""

from __future__ import annotations

import asyncio


async def closed_port() -> int:
    """Bind, learn the port, close: connecting there is refused at once (no timeout to wait out)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port
