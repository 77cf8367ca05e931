"""How a run reports progress: bars only on a terminal, a line per stage from the CLI, a JSON line per stage in Lambda.

tqdm's carriage-return redraws turn into clutter in a file, a CI log or CloudWatch, so bars are drawn only
when both stdout and stderr are terminals and ``REC_PROGRESS`` is not false.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from reccore.logs import json_logger

SERVICE = "pipeline"


class _Stream(Protocol):
    def isatty(self) -> bool: ...


def progress_enabled(setting: bool, streams: Iterable[_Stream] | None = None) -> bool:
    """Whether to draw progress bars: ``setting`` (``REC_PROGRESS``) and every stream (stdout, stderr) a terminal."""
    return setting and all(stream.isatty() for stream in (streams or (sys.stdout, sys.stderr)))


@dataclass(frozen=True)
class StageEvent:
    """A stage of the job started, finished or failed (``seconds`` once it has ended)."""

    stage: str
    status: Literal["started", "finished", "failed"]
    seconds: float | None = None


StageHook = Callable[[StageEvent], None]


def print_stage(event: StageEvent) -> None:
    """The CLI's hook: ``… stage`` as each stage starts (the summary gives the timings)."""
    if event.status == "started":
        print(f"… {event.stage}", flush=True)


def stage_logger(request_id: str | None = None) -> StageHook:
    """The Lambda's hook: one JSON line per stage when it ends, like the API's request lines (with the request id)."""

    def log_stage(event: StageEvent) -> None:
        if event.status == "started":
            return
        fields = {"stage": event.stage, "status": event.status, "seconds": event.seconds, "request_id": request_id}
        logger.log(logging.INFO if event.status == "finished" else logging.ERROR, "stage", extra=fields)

    return log_stage


logger = json_logger(SERVICE)
