"""Downstream notifications: enqueue them after an event is stored, and deliver them, signed.

One job run is one attempt (`deliver_notification(id, attempt)`, job id `notify:<id>:<attempt>`).
A failed attempt records itself, then the next attempt is enqueued as a new deferred job: arq's
own retry keeps the first job's 1-day expiry, and the schedule runs for about 33 hours.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from shared.jobs import DELIVER_NOTIFICATION
from shared.jobs import delivery_job_id as job_id
from shared.logging import correlation_id
from shared.notify import outbox, signing, subscribers
from shared.notify.breaker import Breaker
from shared.notify.outbox import Attempt, Delivery, Outcome
from shared.notify.schedule import DeliveryPolicy, retry_after_seconds
from shared.queue import Coalescer
from workers import batching, transient
from workers.consumer import Retry
from workers.deps import JobCtx, WorkerDeps, deps
from workers.writer import Stored

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

RUNTIME = "notify"  # ctx key of the NotifyRuntime
POLICY = "notify_policy"  # ctx key a caller may preset (tests: a short schedule, a fake clock)
CLOCK = "notify_clock"
THROTTLED = frozenset({429, 503})
# Breaker and concurrency-cap waits are arq retries that spend no attempt; they stop long before this.
MAX_TRIES = 10_000
# Postgres or Redis away for a moment: try the same attempt again shortly.
TRANSIENT = transient.POSTGRES_OR_REDIS
EARLY_DEFER_S = 2.0
EARLY_TRIES = 30
LOCAL_WAIT_S = 0.5


@dataclass(frozen=True, slots=True)
class NotifyRuntime:
    """What deliveries share in one worker process."""

    session: aiohttp.ClientSession
    policy: DeliveryPolicy
    breaker: Breaker
    # Records attempts' outcomes: those that end together share one statement (`outcome_records`).
    records: Coalescer[Outcome, bool]
    clock: Clock = time.time
    rng: random.Random = field(default_factory=random.Random)
    # This process's own attempts per subscriber, capped like the shared slots (see `_local_turn`).
    turns: dict[int, asyncio.Semaphore] = field(default_factory=dict)


@asynccontextmanager
async def notify_resources(ctx: JobCtx) -> AsyncIterator[None]:
    """One HTTP client per worker (keep-alive to each receiver) and the shared breaker."""
    d = deps(ctx)
    policy = ctx.get(POLICY) or d.settings.delivery
    assert isinstance(policy, DeliveryPolicy)
    timeout = aiohttp.ClientTimeout(total=policy.timeout_s, sock_connect=policy.connect_timeout_s)
    breaker = Breaker(
        d.redis,
        d.keys,
        threshold=policy.breaker_threshold,
        cooldown_s=policy.breaker_cooldown_s,
        max_inflight=policy.max_inflight,
        slot_ttl_s=policy.timeout_s + 5,
        run=d.scripts.run if d.scripts else None,
    )
    clock = ctx.get(CLOCK) or time.time
    # No cookies: receivers are machines, and one receiver must not see another's.
    async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as session:
        ctx[RUNTIME] = d.runtimes[RUNTIME] = NotifyRuntime(session, policy, breaker, outcome_records(d), clock)
        try:
            yield
        finally:
            d.runtimes.pop(RUNTIME, None)


def outcome_records(d: WorkerDeps) -> Coalescer[Outcome, bool]:
    """`outbox.record_many` for the attempts that end within `batching.WINDOW_S` of each other."""
    return Coalescer(functools.partial(_record_many, d), window_s=batching.WINDOW_S)


def _runtime(ctx: JobCtx) -> NotifyRuntime:
    value = ctx[RUNTIME]
    assert isinstance(value, NotifyRuntime)  # set by notify_resources
    return value


async def enqueue(d: WorkerDeps, notification_id: str, attempt: int, *, at: float | None = None) -> None:
    """Enqueue one attempt, now or at `at` (epoch seconds, by the runtime's clock)."""
    await d.queue.enqueue(
        DELIVER_NOTIFICATION, notification_id, attempt, job_id=job_id(notification_id, attempt), at=at
    )


async def follow_event(d: WorkerDeps, stored: Stored) -> None:
    """Follow-up of every stored event: make the first attempt of each of its notifications.

    The rows were written with the event row (see `shared.notify.outbox`); this runs on every
    `store_event` run, so a worker killed before or during the attempt leaves nothing behind:
    the re-run finds the attempt unrecorded and makes it again, with the same webhook-id. The
    first attempt runs here, not as a job of its own, which saves a queue round trip (latency)
    and a job (throughput); retries are jobs. Without a runtime (no worker resources) every
    first attempt is enqueued instead.
    """
    rows = stored.deliveries  # read by the writer in the event's own transaction
    rt = d.runtimes.get(RUNTIME)
    if not isinstance(rt, NotifyRuntime):
        for row in rows:
            await enqueue(d, row.id, 1)
        return
    results = await asyncio.gather(*(deliver(d, rt, row.id, 1, row=row) for row in rows))
    for row, result in zip(rows, results, strict=True):
        d.metrics.notification_deliveries.labels(result.outcome).inc()
        if result.outcome in ("deferred", "early"):
            await enqueue(d, row.id, 1, at=rt.clock() + result.wait_s)


# -- the job ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    outcome: str  # delivered | retry | dead | gone | deferred | early | stale | missing | disabled
    wait_s: float = 0.0


async def deliver_notification(ctx: JobCtx, notification_id: str, attempt: int) -> str:
    """Make attempt number `attempt` to deliver one notification (idempotent per attempt)."""
    d = deps(ctx)
    try:
        result = await deliver(d, _runtime(ctx), str(notification_id), int(attempt))
    except TRANSIENT as e:
        raise Retry(defer=EARLY_DEFER_S * min(int(ctx.get("job_try", 1)), 30)) from e
    d.metrics.notification_deliveries.labels(result.outcome).inc()
    if result.outcome == "early" and int(ctx.get("job_try", 1)) >= EARLY_TRIES:
        return "stale"  # the attempt before it never landed: a replay reset the row meanwhile
    if result.outcome == "deferred":
        # Backing off: a subscriber at its cap is likely a slow one, and its waiting jobs must not
        # spin through the worker's slots (that would starve everyone else).
        tries = int(ctx.get("job_try", 1))
        raise Retry(defer=min(result.wait_s * 2 ** min(tries - 1, 8), max(_runtime(ctx).policy.timeout_s, 1.0)))
    if result.outcome == "early":
        raise Retry(defer=result.wait_s)
    return result.outcome


async def deliver(
    d: WorkerDeps, rt: NotifyRuntime, notification_id: str, attempt: int, *, row: Delivery | None = None
) -> Result:
    """The job without arq: check the row, pass the breaker, send, record, schedule the next.

    `row`: the notification as just read (the follow-up's query), saving a read.
    """
    if row is None:
        async with d.pool.acquire() as conn:
            row = await outbox.load(conn, notification_id)
        if row is None:
            return Result("missing")
    if row.request_id:
        correlation_id.set(row.request_id)  # this job's (or follow-up task's) log lines name the callback
    if row.status != "pending" or row.attempts >= attempt:
        return Result("stale")  # already delivered, dead, or this attempt was recorded
    if row.attempts < attempt - 1:
        # The previous attempt's bookkeeping has not landed (its job is still running).
        return Result("early", EARLY_DEFER_S)
    if not row.enabled:
        async with d.pool.acquire() as conn:
            await outbox.kill(conn, row.id, "subscriber disabled")
        d.metrics.dead_letters.labels(DELIVER_NOTIFICATION).inc()
        return Result("disabled")
    turn = await _local_turn(rt, row.subscriber_id)
    if turn is None:
        return Result("deferred", rt.rng.uniform(0.25, 0.75))
    try:
        return await _attempt(d, rt, row, attempt)
    finally:
        turn.release()


async def _local_turn(rt: NotifyRuntime, subscriber_id: int) -> asyncio.Semaphore | None:
    """Wait (briefly) for one of this process's `max_inflight` turns at the subscriber.

    Without it, a burst of first attempts beyond the shared cap is deferred as jobs, each at least
    a quarter of a second late (most of an end-to-end latency budget) and a job run more, when the
    attempts ahead of it end milliseconds later. A subscriber that stays busy (slow, hanging) still
    gets its attempts deferred after `LOCAL_WAIT_S`, so it cannot hold every worker slot.
    """
    turns = rt.turns.get(subscriber_id)
    if turns is None:
        turns = rt.turns[subscriber_id] = asyncio.Semaphore(rt.policy.max_inflight)
    try:
        async with asyncio.timeout(LOCAL_WAIT_S):
            await turns.acquire()
    except TimeoutError:
        return None
    return turns


async def _attempt(d: WorkerDeps, rt: NotifyRuntime, row: Delivery, attempt: int) -> Result:
    token = job_id(row.id, attempt)
    gate = await rt.breaker.acquire(row.subscriber_id, token, rt.clock())
    if gate.state == "open":
        # An open breaker spends the attempt without touching the network: the notification
        # walks its schedule (and ends in dead letters) exactly as if the endpoint had failed.
        blocked = Attempt(attempt, rt.clock(), 0, "breaker_open", None, "circuit breaker open")
        return await _book(d, rt, row, Sent(blocked))
    if gate.wait_s > 0:
        # At the subscriber's concurrency cap, or its half-open probe is in flight: not an attempt.
        return Result("deferred", gate.wait_s + rt.rng.uniform(0, 0.5))
    # A job cancelled mid-send keeps its slot until the slot's TTL: the breaker cannot tell a
    # cancelled attempt from a lost one, and counting it either way would be a guess.
    sent = await send(rt, row, attempt)
    change = await rt.breaker.release(row.subscriber_id, token, ok=sent.outcome == "delivered", now=rt.clock())
    if change:
        d.metrics.breaker_transitions.labels("opened" if change > 0 else "closed").inc()
    d.metrics.notification_attempt_seconds.observe(sent.attempt.duration_ms / 1000)
    return await _book(d, rt, row, sent)


@dataclass(frozen=True, slots=True)
class Sent:
    attempt: Attempt
    retry_after: str | None = None

    @property
    def outcome(self) -> str:
        return self.attempt.outcome


async def send(rt: NotifyRuntime, row: Delivery, attempt: int) -> Sent:
    """POST the notification once; every failure becomes a recorded outcome, never an exception."""
    started, t0 = rt.clock(), time.perf_counter()
    keys = [signing.secret_key(s) for s in row.secrets]
    headers = signing.headers(row.id, int(started), row.body, keys)
    headers["content-type"] = "application/json"
    status: int | None = None
    retry_after: str | None = None
    try:
        # Redirects count as failures (Standard Webhooks): a receiver moved is a receiver to re-check.
        async with rt.session.post(row.url, data=row.body, headers=headers, allow_redirects=False) as response:
            status, retry_after = response.status, response.headers.get("Retry-After")
            snippet = await response.content.read(rt.policy.response_snippet_bytes)
        error = None if 200 <= status < 300 else f"HTTP {status}: {snippet.decode(errors='replace')}"
    except TimeoutError:
        error = f"timeout after {rt.policy.timeout_s:g} s"
    except aiohttp.ClientError as e:
        error = f"{type(e).__name__}: {e}"[:500]
    duration_ms = int((time.perf_counter() - t0) * 1000)
    outcome = _classify(status)
    return Sent(Attempt(attempt, started, duration_ms, outcome, status, error), retry_after)


def _classify(status: int | None) -> str:
    if status is not None and 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    if status in THROTTLED:
        return "throttled"
    return "failed"


async def _book(d: WorkerDeps, rt: NotifyRuntime, row: Delivery, sent: Sent) -> Result:
    attempt = sent.attempt
    if attempt.outcome == "delivered":
        await rt.records([Outcome(row.id, attempt, "delivered")])
        d.metrics.notification_delivered_attempt.observe(attempt.number)
        return Result("delivered")
    if attempt.outcome == "gone":
        async with d.pool.acquire() as conn, conn.transaction():
            await subscribers.disable_by_id(conn, row.subscriber_id, "410 Gone from the receiver")
            await outbox.record(conn, row.id, attempt, status="dead", next_at=None)
        d.metrics.dead_letters.labels(DELIVER_NOTIFICATION).inc()
        logger.warning("subscriber %d answered 410: disabled", row.subscriber_id)
        return Result("gone")
    now = rt.clock()
    retry_after = retry_after_seconds(sent.retry_after, now) if attempt.outcome == "throttled" else None
    delay = rt.policy.delay_after(attempt.number, rt.rng, retry_after_s=retry_after)
    if delay is None:
        await rt.records([Outcome(row.id, attempt, "dead")])
        d.metrics.dead_letters.labels(DELIVER_NOTIFICATION).inc()
        return Result("dead")
    # The next attempt is enqueued before this one is recorded: if the worker dies in between,
    # arq re-runs this job (same webhook-id again) and the enqueue repeats as a no-op. The other
    # order could lose the next attempt. A next attempt that starts before the record lands
    # finds the row one attempt behind and waits ("early").
    await enqueue(d, row.id, attempt.number + 1, at=now + delay)
    await rt.records([Outcome(row.id, attempt, "pending", now + delay)])
    return Result("retry")


async def _record_many(d: WorkerDeps, outcomes: list[Outcome]) -> list[bool]:
    async with d.pool.acquire() as conn:
        return await outbox.record_many(conn, outcomes)
