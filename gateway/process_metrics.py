"""A per-process metrics port, so Prometheus can reach each of `callgate gateway --processes N`.

The N processes share `CALLGATE_PORT` through SO_REUSEPORT, so a scrape of that port lands on
one of them at random. Each gateway process therefore also serves its own `/metrics` and
`/healthz` on a side port: the first free port of `CALLGATE_PORT+1 … CALLGATE_PORT+SIDE_PORTS`
(claimed without SO_REUSEPORT, so two processes never get the same one). Prometheus scrapes
those ports, one target per process (docs/operations.md says why not multiprocess mode).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.handlers import ops
from gateway.keys import METRICS, SETTINGS
from shared.metrics import Metrics

logger = logging.getLogger(__name__)

SIDE_PORTS = 64
SIDE_PORT = web.AppKey("side_port", int)  # the side port this process claimed (0: none)


def side_app(metrics: Metrics) -> web.Application:
    """The side port's tiny app: this process's metrics and liveness, with the main port's handlers."""
    app = web.Application()
    app[METRICS] = metrics
    app.router.add_get("/metrics", ops.metrics)
    app.router.add_get("/healthz", ops.healthz)
    return app


async def claim_side_port(runner: web.AppRunner, host: str, first: int, count: int) -> int:
    """Start a site on the first free port of [first, first+count); 0 when every one is taken."""
    for port in range(first, min(first + count, 65536)):
        site = web.TCPSite(runner, host, port, reuse_port=False)
        try:
            await site.start()
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            continue
        return port
    return 0


async def side_port(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the per-process metrics port (off when the gateway binds an ephemeral port)."""
    settings = app[SETTINGS]
    app[SIDE_PORT] = 0
    if settings.port == 0:
        yield
        return
    runner = web.AppRunner(side_app(app[METRICS]), access_log=None)
    await runner.setup()
    try:
        app[SIDE_PORT] = await claim_side_port(runner, settings.host, settings.port + 1, SIDE_PORTS)
        if app[SIDE_PORT]:
            logger.info("process metrics on port %d", app[SIDE_PORT])
        else:
            logger.warning("no free metrics side port in %d+1..%d", settings.port, settings.port + SIDE_PORTS)
        yield
    finally:
        await runner.cleanup()
