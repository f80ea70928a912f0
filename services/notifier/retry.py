"""Retries with exponential backoff and jitter, and the errors a sink raises to steer them.

    DeliveryError              a delivery attempt failed
    ├── RetryableError         may work later: a timeout, a refused connection, HTTP 5xx / 429 / 408
    └── PermanentError         will not work by trying again: HTTP 4xx, a refused recipient

Pure apart from the ``sleep`` and ``jitter`` the caller injects (tests pass no-ops and constants).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


class DeliveryError(Exception):
    """A delivery attempt failed; the message is the reason a dead letter carries."""


class RetryableError(DeliveryError):
    pass


class PermanentError(DeliveryError):
    pass


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; before retry n (1-based) wait ``min(cap_s, base_s * 2**(n-1))``, scaled
    by a jitter in [0.5, 1) so that receivers coming back are not hit by every sender at once."""

    attempts: int = 5
    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, retry: int, jitter: float) -> float:
        """Seconds to wait before retry ``retry`` (1 = the second attempt); ``jitter`` in [0, 1)."""
        return min(self.cap_s, self.base_s * 2 ** (retry - 1)) * (0.5 + jitter / 2)

    def schedule(self, jitter: float = 1.0) -> list[float]:
        """Every wait between the attempts, for one constant jitter (``1.0``: the longest waits)."""
        return [self.delay(n, jitter) for n in range(1, self.attempts)]

    @property
    def longest_s(self) -> float:
        """The most all the waits of one delivery add up to."""
        return sum(self.schedule())

    def lease_s(self, attempt_timeout_s: float) -> float:
        """How long a delivery holds its lease: every attempt timing out and every backoff, with a margin."""
        return self.attempts * attempt_timeout_s + self.longest_s + 60.0


@dataclass(frozen=True)
class Outcome:
    """How a delivery ended: ``delivered`` after ``attempts`` tries, or failed with ``reason``."""

    delivered: bool
    attempts: int
    reason: str = ""


async def with_retries(
    send: Callable[[int], Awaitable[None]],
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
    jitter: Callable[[], float],
) -> Outcome:
    """Call ``send(attempt)`` until it returns, raises :class:`PermanentError` or runs out of attempts.
    Any other exception counts as retryable (a bug in a sink must not lose the alert silently)."""
    reason = ""
    for attempt in range(1, policy.attempts + 1):
        try:
            await send(attempt)
            return Outcome(True, attempt)
        except PermanentError as exc:
            return Outcome(False, attempt, f"{exc} (not retried)")
        except Exception as exc:
            reason = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
        if attempt < policy.attempts:
            await sleep(policy.delay(attempt, jitter()))
    return Outcome(False, policy.attempts, f"{reason} (after {policy.attempts} attempts)")
