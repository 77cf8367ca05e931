"""Impressions: one record per ``POST /recommend`` answer, for attribution and online experiments.

Layout: NDJSON under ``<prefix>/impressions/YYYY/MM/DD/HH/`` (Firehose's own, as the event log), written
through a second delivery stream (``REC_IMPRESSIONS_STREAM``) or, with none, straight to the model store.
The training pipeline never reads them. One record per line::

    {"recommendation_id": "9f…", "user_id": "u1" | null, "session_id": "s1" | null,
     "items": [["i9", 1], ["i4", 2]], "strategy": "personalized", "model_version": "2026…",
     "variant": "champion", "experiment": "exp-…" | null, "timestamp": 1719705600.25}

Cheap and asynchronous: a request puts its record on a bounded in-memory queue and goes on; a background
thread writes batches (500 records, or every second). A full queue drops the record and a failed write drops
its batch, both counted and logged: an impression never fails or slows a request. On Lambda the thread runs
only while some invocation does, so records wait in memory until the next one; the ones still queued when
the environment is shut down are lost (at most the last second's).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

IMPRESSIONS_DIR = "impressions"
_BATCH = 500
_FLUSH_SECONDS = 1.0
_MAX_QUEUED = 20_000

logger = logging.getLogger(__name__)


def impression(
    recommendation_id: str,
    user_id: str | None,
    session_id: str | None,
    items: Sequence[str],
    strategy: str | None,
    model_version: str,
    variant: str,
    experiment: str | None,
) -> dict[str, Any]:
    """The log record of one answer (ranks from 1)."""
    return {
        "recommendation_id": recommendation_id,
        "user_id": user_id,
        "session_id": session_id,
        "items": [[item, rank] for rank, item in enumerate(items, start=1)],
        "strategy": strategy,
        "model_version": model_version,
        "variant": variant,
        "experiment": experiment,
        "timestamp": round(time.time(), 3),
    }


class ImpressionLog:
    """A bounded queue in front of ``sink`` (a callable taking a batch of records), drained by one daemon thread."""

    def __init__(self, sink: Callable[[list[dict[str, Any]]], None], max_queued: int = _MAX_QUEUED) -> None:
        self._sink = sink
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_queued)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._pending = 0  # queued or being written
        self.written = 0
        self.dropped = 0

    def log(self, record: dict[str, Any]) -> None:
        """Queue one record; never raises, never blocks."""
        try:
            with self._idle:
                self._queue.put_nowait(record)
                self._pending += 1
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("impression queue full; records dropped", extra={"dropped": self.dropped})
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="impressions", daemon=True)
                    self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is written or dropped (tests, shutdown). True if done in time."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + _FLUSH_SECONDS
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            try:
                self._sink(batch)
                self.written += len(batch)
            except Exception as exc:  # noqa: BLE001 - the request is long gone: count, log and go on
                self.dropped += len(batch)
                logger.warning("impressions not written", extra={"records": len(batch), "reason": repr(exc)})
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()
