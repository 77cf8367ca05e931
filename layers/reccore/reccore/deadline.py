"""The request-wide deadline that every backend call of one request shares.

The service sets it once per request (``REC_REQUEST_DEADLINE_SECONDS``); the LATEST check, the user-state
store and the event log each take only what is left of it, so a stalled backend costs a request one deadline,
not one timeout per call. A context variable carries it: worker threads started with the request's context
(``run_in_threadpool``) see it too. Outside a request (the pipeline, tests) there is no deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("rec_request_deadline", default=None)


@contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """Within this block, :func:`remaining` counts down from ``seconds``."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left before the current request's deadline (0 when past it); ``None`` outside a request."""
    deadline = _DEADLINE.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def bounded(seconds: float) -> float:
    """``seconds``, cut to what is left of the request's deadline."""
    left = remaining()
    return seconds if left is None else min(seconds, left)
