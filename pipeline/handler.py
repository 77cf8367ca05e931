"""Lambda entry point of the pipeline image: the event's keys override the ``REC_*`` settings."""

from __future__ import annotations

from typing import Any

from pipeline.emr import dispatch
from pipeline.job import run
from pipeline.reporting import stage_logger
from reccore.settings import BatchSettings, PipelineSettings


def handler(event: dict[str, Any] | None, context: object) -> dict[str, Any]:
    """Run the job (e.g. ``{"source": "synthetic", "interactions": 20000}``) and return its summary.

    ``{"command": "batch", "model": URI, "users": "all", "k": 10, "output": URI}`` runs a (small) batch
    recommendation job instead; ``{"command": "experiment-evaluate", "model": URI}`` runs the online experiment's
    decision job (the ExperimentSchedule). Inputs of at least ``REC_SPARK_THRESHOLD_BYTES`` (or ``{"engine": "spark"}``)
    start an EMR Serverless job run instead and return its id. Failures raise, so Lambda records the invocation
    as failed with the error's type and message. Each stage logs one JSON line when it ends (no progress bars:
    Lambda's output is not a terminal).
    """
    if (event or {}).get("command") == "experiment-evaluate":
        from pipeline.experiment.control import scheduled
        from reccore.storage import open_store

        return scheduled(open_store(str((event or {})["model"])))
    if (event or {}).get("command") == "batch":
        from pipeline.batch import run_batch

        fields = {
            f"batch_{key}": value
            for key, value in (event or {}).items()
            if f"batch_{key}" in BatchSettings.model_fields
        }
        return run_batch(BatchSettings(**fields)).to_dict()
    settings = PipelineSettings(**{k: v for k, v in (event or {}).items() if k in PipelineSettings.model_fields})
    on_stage = stage_logger(getattr(context, "aws_request_id", None))
    return dispatch(settings) or run(settings, on_stage=on_stage).to_dict()
