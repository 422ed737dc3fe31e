"""One way to try an operation again: a bounded number of attempts, or until a deadline.

Every place that retries (registering an app two processes race on, cloning a
template another connection still holds, starting a server whose port was
taken between check and bind) goes through :func:`retry`, so the bounds and the
back-off live in one place.

Example::

    from storekeeper.retry import retry

    retry(lambda: conn.execute(query), on=ObjectInUse, timeout=10.0, delay=0.05)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: The most a pause grows to, and its growth factor.
DEFAULT_MAX_DELAY = 0.5
DEFAULT_BACKOFF = 2.0


def retry(
    func: Callable[[], T],
    *,
    on: type[BaseException] | tuple[type[BaseException], ...],
    attempts: int | None = None,
    timeout: float | None = None,
    delay: float = 0.0,
    max_delay: float = DEFAULT_MAX_DELAY,
    backoff: float = DEFAULT_BACKOFF,
    give_up: Callable[[BaseException], BaseException | None] | None = None,
    when: Callable[[BaseException], bool] | None = None,
) -> T:
    """Call ``func`` until it returns, trying again after an exception of type ``on``.

    Stops after ``attempts`` calls, or after the first failure once ``timeout``
    seconds have passed since the first call (at least one of them must be
    given; a timeout needs a ``delay``). The pause
    before the next call starts at ``delay`` and grows by ``backoff`` up to
    ``max_delay`` (no pause with the default ``delay=0``: for races that the
    next try settles at once). ``when`` (if given) decides whether a caught exception is
    worth another try; one that is not is raised at once. When the tries run
    out, ``give_up(last_error)`` may return the exception to raise in its
    place (raised ``from None``); otherwise the last error is re-raised.
    """
    if attempts is None and timeout is None:
        raise ValueError("retry() needs attempts or timeout")
    if attempts is not None and attempts < 1:
        raise ValueError("attempts must be at least 1")
    if timeout is not None and delay <= 0:
        raise ValueError("retry() with a timeout needs a delay > 0 (or it would spin until the deadline)")
    deadline = None if timeout is None else time.monotonic() + timeout
    tried = 0
    pause = delay
    while True:
        tried += 1
        try:
            return func()
        except on as err:
            if when is not None and not when(err):
                raise
            out_of_tries = attempts is not None and tried >= attempts
            out_of_time = deadline is not None and time.monotonic() > deadline
            if out_of_tries or out_of_time:
                replacement = give_up(err) if give_up is not None else None
                if replacement is not None:
                    raise replacement from None
                raise
        if pause > 0:
            time.sleep(pause)
            pause = min(pause * backoff, max_delay)
