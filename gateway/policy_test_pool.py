"""Where `POST /admin/policy/test` decides: in a helper process, not on the gateway's event loop.

A policy test decides every recorded decision of a window under a candidate, tens of thousands a
second on one core (docs/policy.md). On the loop that also answers the synchronous approve/reject
callbacks, a large window would hold their signed answers back for as long as it runs. So the
loop only streams the recorded rows from PostgreSQL in pages (`shared.policy.replay.recorded_pages`)
and hands each page to one helper process, which compiles the candidate once and decides the pages
(`shared.policy.replay.Replay`); the loop fetches the next page while the helper decides the last.

- One helper per gateway process (`ProcessPoolExecutor(max_workers=1)`), spawned on the first test
  (most gateways never run one) and shut down with the app. Spawned, not forked: the gateway has
  threads and an event loop a fork would copy mid-flight.
- One test at a time per gateway process: a second one waits for the first, in arrival order,
  rather than getting an answer the route's interface does not have (DESIGN.md, /openapi.json).
- At most `MAX_REQUESTS` recorded decisions per test, counted before any is decided: a larger
  window is refused (400, naming `since`). `callgate policy test` has no such bound.

What crosses to the helper is our own data (the document's text, the order registry, rows as
tuples of str/int/float), pickled over the executor's pipe, never anything a client sent as bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from aiohttp import web

from shared.db import Pool
from shared.policy.model import OrderView
from shared.policy.replay import RecordedRow, Replay, WindowReport, compile_candidate, current_orders, recorded_pages
from shared.policy.snapshot import PolicySnapshot

logger = logging.getLogger(__name__)

MAX_REQUESTS = 1_000_000  # a minute or so of one core; a larger window goes through the CLI


class PolicyTests:
    """Runs policy tests one at a time in a helper process (spawned on first use)."""

    def __init__(self, *, max_requests: int = MAX_REQUESTS) -> None:
        self.max_requests = max_requests
        self.in_line = 0  # tests running or waiting for the one running
        self._one_at_a_time = asyncio.Lock()
        self._executor: ProcessPoolExecutor | None = None

    async def run(self, pool: Pool, text: str, *, since: float, providers: Sequence[str] = ()) -> WindowReport:
        """The `policy test` report of `text` on the decisions recorded since `since` (unix seconds).
        PolicyError: the document is refused; WindowTooLarge: over `max_requests`; asyncpg and OS
        errors: PostgreSQL cannot be reached."""
        self.in_line += 1
        try:
            async with self._one_at_a_time:
                return await self._in_helper(pool, text, since, providers)
        finally:
            self.in_line -= 1

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            # In a thread: it waits for a page the helper may be deciding.
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    def _helper(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_helper,
                initargs=(os.getpid(),),
            )
        return self._executor

    async def _in_helper(self, pool: Pool, text: str, since: float, providers: Sequence[str]) -> WindowReport:
        executor = self._helper()
        try:
            return await self._replay(executor, pool, text, since, providers)
        except BrokenProcessPool:
            # The helper died (killed, out of memory): this test fails, the next one gets a new helper.
            logger.warning("the policy test helper process ended; the next test starts a new one")
            self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
            raise

    async def _replay(
        self, executor: ProcessPoolExecutor, pool: Pool, text: str, since: float, providers: Sequence[str]
    ) -> WindowReport:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, _compile, text)  # a refused document: before any database work
        await loop.run_in_executor(executor, _begin, await current_orders(pool))
        pages = recorded_pages(pool, since=since, providers=providers, at_most=self.max_requests)
        deciding: asyncio.Future[None] | None = None
        try:
            async with contextlib.aclosing(pages):
                async for rows in pages:  # the next page is fetched while the helper decides the last
                    if deciding is not None:
                        await deciding
                    deciding = loop.run_in_executor(executor, _feed, rows)
            if deciding is not None:
                await deciding
        except BaseException:
            if deciding is not None and not deciding.cancel() and not deciding.cancelled():
                deciding.exception()  # retrieved and dropped: the error being raised is the one to report
            raise
        return await loop.run_in_executor(executor, _report)


POLICY_TESTS = web.AppKey("policy_tests", PolicyTests)


async def policy_tests(app: web.Application) -> AsyncIterator[None]:
    """The app's policy tests (cleanup context): the helper process ends with the app."""
    tests = PolicyTests()
    app[POLICY_TESTS] = tests
    yield
    await tests.close()


# -- in the helper process --------------------------------------------------------------------


@dataclass(slots=True)
class _Test:
    candidate: PolicySnapshot | None = None
    replay: Replay | None = None


# The helper's one test in progress: module state, because it must outlive one executor call
# (the candidate is compiled once, then fed page after page) and the helper runs nothing else.
_TEST = _Test()


def _start_helper(gateway: int) -> None:
    # Ctrl-C reaches the whole process group: the gateway shuts the helper down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):  # and ends with the gateway even if that is SIGKILLed
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != gateway:  # it ended before the line above
        os._exit(0)


def _compile(text: str) -> None:
    _TEST.candidate = _TEST.replay = None  # whatever an abandoned test left
    _TEST.candidate = compile_candidate(text)


def _begin(orders: OrderView) -> None:
    if _TEST.candidate is None:
        raise RuntimeError("no candidate compiled")
    _TEST.replay = Replay(_TEST.candidate, orders)


def _feed(rows: list[RecordedRow]) -> None:
    if _TEST.replay is None:
        raise RuntimeError("no policy test begun")
    _TEST.replay.feed(rows)


def _report() -> WindowReport:
    if _TEST.replay is None:
        raise RuntimeError("no policy test begun")
    report = _TEST.replay.report
    _TEST.candidate = _TEST.replay = None
    return report
