"""The backoff schedule and the retry loop: retryable errors are tried again, permanent ones are not."""

from __future__ import annotations

import asyncio

import pytest

from services.notifier.retry import Outcome, PermanentError, RetryableError, RetryPolicy, with_retries


def test_the_waits_double_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=6, base_s=1.0, cap_s=10.0)
    assert policy.schedule() == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert policy.longest_s == 25.0
    assert RetryPolicy(attempts=1).schedule() == []


def test_jitter_scales_each_wait_between_half_and_all_of_it() -> None:
    policy = RetryPolicy(attempts=4, base_s=2.0, cap_s=60.0)
    assert policy.schedule(jitter=0.0) == [1.0, 2.0, 4.0]
    assert policy.delay(3, 0.5) == pytest.approx(6.0)


def run(policy: RetryPolicy, failures: list[Exception]) -> tuple[Outcome, list[int], list[float]]:
    attempts: list[int] = []
    waits: list[float] = []

    async def send(attempt: int) -> None:
        attempts.append(attempt)
        if failures:
            raise failures.pop(0)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return asyncio.run(with_retries(send, policy, sleep, lambda: 1.0)), attempts, waits


def test_fails_twice_then_succeeds_on_the_third_attempt() -> None:
    outcome, attempts, waits = run(RetryPolicy(5, 1.0, 60.0), [RetryableError("HTTP 500"), RetryableError("HTTP 503")])
    assert outcome == Outcome(True, 3) and attempts == [1, 2, 3] and waits == [1.0, 2.0]


def test_after_the_last_attempt_the_reason_says_how_often() -> None:
    outcome, attempts, waits = run(RetryPolicy(3, 1.0, 60.0), [RetryableError("HTTP 500")] * 5)
    assert outcome == Outcome(False, 3, "HTTP 500 (after 3 attempts)")
    assert attempts == [1, 2, 3] and waits == [1.0, 2.0]  # no wait after the last


def test_a_permanent_error_is_not_retried() -> None:
    outcome, attempts, _ = run(RetryPolicy(5), [PermanentError("HTTP 410")])
    assert outcome == Outcome(False, 1, "HTTP 410 (not retried)") and attempts == [1]


def test_an_unexpected_exception_is_retried_and_named() -> None:
    outcome, _, _ = run(RetryPolicy(2, 0.01), [KeyError("x"), KeyError("x")])
    assert outcome == Outcome(False, 2, "KeyError: 'x' (after 2 attempts)")
