"""The delivery policy as data: retry schedule, jitter, timeouts, circuit breaker limits."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass

# Svix's schedule: after the first attempt, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard, how often and for how long callgate tries to deliver one notification."""

    schedule_s: tuple[float, ...] = DEFAULT_SCHEDULE_S
    jitter: float = 0.2  # ±20 %: retries of many notifications do not arrive in lockstep
    timeout_s: float = 10.0  # the whole attempt: connect, send, read the answer
    connect_timeout_s: float = 3.0
    retry_after_max_s: float = 36000.0  # a Retry-After beyond this is capped, not obeyed blindly
    breaker_threshold: int = 5  # consecutive failures that open a subscriber's breaker
    breaker_cooldown_s: float = 30.0  # how long it stays open before one probe is let through
    max_inflight: int = 20  # concurrent attempts per subscriber, across every worker
    response_snippet_bytes: int = 512  # kept as last_error, never more

    @property
    def max_attempts(self) -> int:
        return len(self.schedule_s) + 1

    def delay_after(self, attempt: int, rng: random.Random, *, retry_after_s: float | None = None) -> float | None:
        """Seconds until the next attempt after failed attempt number `attempt` (1-based); None: give up.

        A receiver's Retry-After is honoured as a floor: never sooner than it asked, never sooner
        than the schedule says.
        """
        if attempt >= self.max_attempts:
            return None
        base = self.schedule_s[attempt - 1]
        delay = base * rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.retry_after_max_s))
        return delay


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Parse a Retry-After header (delta seconds or an HTTP date); None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
