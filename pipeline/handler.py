"""Lambda entry point of the pipeline image: the event's keys override the ``REC_*`` settings."""

from __future__ import annotations

from typing import Any

from pipeline.job import run
from reccore.settings import PipelineSettings


def handler(event: dict[str, Any] | None, context: object) -> dict[str, Any]:
    """Run the job (e.g. ``{"source": "synthetic", "interactions": 20000}``) and return its summary.

    Failures raise, so Lambda records the invocation as failed with the error's type and message.
    """
    overrides = {key: value for key, value in (event or {}).items() if key in PipelineSettings.model_fields}
    return run(PipelineSettings(**overrides)).to_dict()
