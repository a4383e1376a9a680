"""The one retry policy (``connector.retry``) on its own: how often each kind of failure is tried
again, how long it waits, and what it raises when it gives up. No HTTP: the tries are scripted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connector.retry import (
    DAMAGED,
    THROTTLED,
    TRANSIENT,
    UNAUTHORIZED,
    Backoff,
    Retriable,
    RetryPolicy,
)


class GaveUp(Exception):
    """What the scripted failures raise when the policy stops trying."""


POLICY = RetryPolicy(limits={TRANSIENT: 3, THROTTLED: 8, DAMAGED: 1, UNAUTHORIZED: 1},
                     backoff=Backoff(base=1.0, cap=4.0), max_retry_after=120.0)


def scripted(*failures: Retriable | None) -> tuple[Callable[[], str], list[int]]:
    """An attempt that raises the failures in turn, then (None) answers "ok"."""
    tries = [0]

    def attempt() -> str:
        failure = failures[tries[0]]
        tries[0] += 1
        if failure is None:
            return "ok"
        raise failure

    return attempt, tries


def failure(kind: str, *, retry_after: float | None = None,
            before_retry: Callable[[], object] | None = None) -> Retriable:
    return Retriable(kind, lambda n: GaveUp(f"{kind} after {n}"), retry_after=retry_after,
                     before_retry=before_retry)


def test_each_kind_is_counted_on_its_own() -> None:
    slept: list[float] = []
    attempt, tries = scripted(failure(TRANSIENT), failure(DAMAGED), failure(TRANSIENT),
                              failure(THROTTLED, retry_after=2), None)
    assert POLICY.call(attempt, sleep=slept.append) == "ok"
    assert tries[0] == 5
    assert len(slept) == 4
    assert slept[3] == 2  # Retry-After as Xero sent it


def test_transient_failures_give_up_after_the_limit_with_their_own_error() -> None:
    attempt, tries = scripted(*[failure(TRANSIENT)] * 5)
    with pytest.raises(GaveUp, match="transient after 4"):
        POLICY.call(attempt, sleep=lambda _s: None)
    assert tries[0] == 4  # three retries


def test_backoff_doubles_within_its_cap_with_jitter() -> None:
    slept: list[float] = []
    attempt, _ = scripted(*[failure(TRANSIENT)] * 3, None)
    POLICY.call(attempt, sleep=slept.append)
    for wait, base in zip(slept, (1.0, 2.0, 4.0), strict=True):
        assert 0.5 * base <= wait <= 1.5 * base


def test_a_retry_after_beyond_the_cap_gives_up_at_once() -> None:
    slept: list[float] = []
    attempt, tries = scripted(failure(THROTTLED, retry_after=121), None)
    with pytest.raises(GaveUp, match="throttled after 1"):
        POLICY.call(attempt, sleep=slept.append)
    assert (tries[0], slept) == (1, [])


def test_a_refused_token_is_retried_once_without_waiting_after_renewing_it() -> None:
    slept: list[float] = []
    renewed: list[bool] = []
    attempt, tries = scripted(failure(UNAUTHORIZED, before_retry=lambda: renewed.append(True)),
                              failure(UNAUTHORIZED), None)
    with pytest.raises(GaveUp, match="unauthorized after 2"):
        POLICY.call(attempt, sleep=slept.append)
    assert (tries[0], slept, renewed) == (2, [], [True])


def test_anything_else_passes_through_at_once() -> None:
    attempt, tries = scripted(None)

    def broken() -> str:
        attempt()
        raise KeyError("not retriable")

    with pytest.raises(KeyError):
        POLICY.call(broken, sleep=lambda _s: None)
    assert tries[0] == 1
