"""storekeeper.retry: attempts, deadlines, back-off and the give-up replacement, with real calls."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest

from storekeeper.retry import retry


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


def failing(times: int, error: type[Exception] = Flaky) -> tuple[list[float], Callable[[], str]]:
    """Return (call times, a function that raises ``error`` for its first ``times`` calls, then returns "ok")."""
    calls: list[float] = []

    def func() -> str:
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise error(f"call {len(calls)}")
        return "ok"

    return calls, func


def test_retries_until_the_call_succeeds() -> None:
    calls, func = failing(2)
    assert retry(func, on=Flaky, attempts=3) == "ok"
    assert len(calls) == 3


def test_gives_up_after_the_attempts_and_reraises_the_last_error() -> None:
    calls, func = failing(10)
    with pytest.raises(Flaky, match="call 3"):
        retry(func, on=Flaky, attempts=3)
    assert len(calls) == 3


def test_give_up_replaces_the_last_error() -> None:
    calls, func = failing(10)
    with pytest.raises(Fatal, match="gave up after call 2") as info:
        retry(func, on=Flaky, attempts=2, give_up=lambda err: Fatal(f"gave up after {err}"))
    assert info.value.__suppress_context__
    assert len(calls) == 2


def test_give_up_returning_none_keeps_the_last_error() -> None:
    _, func = failing(10)
    with pytest.raises(Flaky, match="call 2"):
        retry(func, on=Flaky, attempts=2, give_up=lambda err: None)


def test_gives_up_once_the_timeout_has_passed() -> None:
    calls, func = failing(1000)
    start = time.monotonic()
    with pytest.raises(Flaky):
        retry(func, on=Flaky, timeout=0.3, delay=0.05, max_delay=0.05)
    elapsed = time.monotonic() - start
    assert 0.2 <= elapsed < 5  # stops near the deadline (generous upper bound: a loaded machine sleeps long)
    assert 2 <= len(calls) <= 8  # about 0.3 / 0.05 tries: it paused between them


def test_pauses_grow_by_the_backoff_up_to_max_delay() -> None:
    calls, func = failing(4)
    assert retry(func, on=Flaky, attempts=5, delay=0.05, backoff=2, max_delay=0.1) == "ok"
    pauses = [b - a for a, b in itertools.pairwise(calls)]
    assert pauses[0] >= 0.05 and pauses[1] >= 0.1 and pauses[2] >= 0.1
    assert all(p < 5 for p in pauses)


def test_other_errors_and_refused_ones_are_raised_at_once() -> None:
    calls, func = failing(1, error=Fatal)
    with pytest.raises(Fatal):
        retry(func, on=Flaky, attempts=5)
    assert len(calls) == 1
    calls, func = failing(1)
    with pytest.raises(Flaky):
        retry(func, on=Flaky, attempts=5, when=lambda err: "call 2" in str(err))
    assert len(calls) == 1


def test_needs_a_bound() -> None:
    with pytest.raises(ValueError, match="attempts or timeout"):
        retry(lambda: None, on=Flaky)
    with pytest.raises(ValueError, match="at least 1"):
        retry(lambda: None, on=Flaky, attempts=0)
    with pytest.raises(ValueError, match="needs a delay"):
        retry(lambda: None, on=Flaky, timeout=1.0)  # no pause would mean hammering until the deadline
