"""Large inputs train on EMR Serverless (Spark): size the input, pack the code, start a job run.

The pipeline Lambda calls :func:`dispatch`: inputs under ``spark_threshold_bytes`` train in the Lambda as
before; larger ones (or ``engine: spark``) start an EMR Serverless job run of ``python -m pipeline run
--engine spark`` and return its id. ``make train-emr`` calls :func:`train_emr`: pack a virtual environment
with venv-pack, upload it and the entry script under ``emr_code_uri``, start the run. The archive is
unpacked as ``./environment`` on the driver and executors (the EMR Serverless docs' recipe).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from reccore.errors import ConfigError
from reccore.settings import PipelineSettings

BUNDLE_NAME = "pipeline-env.tar.gz"
ENTRY_NAME = "entry.py"
ENTRY_SCRIPT = '''"""EMR Serverless entry point: ``python -m pipeline`` with the job's arguments."""
import sys

from pipeline.cli import main

sys.exit(main(sys.argv[1:]))
'''
# Spark settings of the job; the passes' driver-side matrices (items x 60 float64) need a large driver.
SPARK_CONF = {
    "spark.driver.cores": "4",
    "spark.driver.memory": "24g",
    "spark.executor.cores": "4",
    "spark.executor.memory": "16g",
    "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": "./environment/bin/python",
    "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": "./environment/bin/python",
    "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python",
}


def _split(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.strip("/")


def input_bytes(source: str, s3_client: Any = None) -> int | None:
    """Total size of an ``s3://`` object or prefix; ``None`` for the built-in sources and local paths."""
    if not source.startswith("s3://"):
        return None
    import boto3

    s3 = s3_client or boto3.client("s3")
    bucket, key = _split(source)
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        total += sum(int(item["Size"]) for item in page.get("Contents", []))
    return total


def job_arguments(settings: PipelineSettings) -> list[str]:
    """The ``python -m pipeline`` arguments that reproduce ``settings`` on Spark."""
    arguments = ["run", "--engine", "spark"]
    for name in ("source", "items", "output", "interactions", "seed", "factors", "weighting", "scaling", "index",
                 "min_recall", "retention"):  # fmt: skip
        value = getattr(settings, name)
        if value is not None:
            arguments += [f"--{name.replace('_', '-')}", str(value)]
    return [*arguments, "--json"] + (["--force"] if settings.force else [])


def start_job_run(settings: PipelineSettings, emr_client: Any = None) -> str:
    """Start the training job on EMR Serverless; returns the job run id."""
    missing = [n for n in ("emr_application_id", "emr_job_role_arn", "emr_code_uri") if not getattr(settings, n)]
    if missing:
        raise ConfigError(f"EMR Serverless is not configured: set {', '.join('REC_' + m.upper() for m in missing)}")
    import boto3

    emr = emr_client or boto3.client("emr-serverless")
    code = str(settings.emr_code_uri).rstrip("/")
    conf = {"spark.archives": f"{code}/{BUNDLE_NAME}#environment", **SPARK_CONF}
    response = emr.start_job_run(
        applicationId=settings.emr_application_id,
        executionRoleArn=settings.emr_job_role_arn,
        name="recsys-pipeline",
        jobDriver={
            "sparkSubmit": {
                "entryPoint": f"{code}/{ENTRY_NAME}",
                "entryPointArguments": job_arguments(settings),
                "sparkSubmitParameters": " ".join(f"--conf {k}={v}" for k, v in conf.items()),
            }
        },
        configurationOverrides={"monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": f"{code}/logs/"}}},
    )
    return str(response["jobRunId"])


def dispatch(settings: PipelineSettings, s3_client: Any = None, emr_client: Any = None) -> dict[str, Any] | None:
    """Start an EMR Serverless run if the input is large (or Spark was asked for); ``None`` means train here."""
    size = input_bytes(settings.source, s3_client)
    large = size is not None and size >= settings.spark_threshold_bytes
    if settings.engine != "spark" and not large:
        return None
    return {"engine": "emr-serverless", "input_bytes": size, "application_id": settings.emr_application_id,
            "job_run_id": start_job_run(settings, emr_client)}  # fmt: skip


def pack(venv: Path, output: Path) -> Path:
    """``venv-pack`` the virtual environment at ``venv`` (non-editable installs only) into ``output``."""
    command = [sys.executable, "-m", "venv_pack", "--prefix", str(venv), "--output", str(output), "--force"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ConfigError(f"venv-pack {venv} failed: {result.stderr.strip().splitlines()[-1:]}")
    return output


def upload_code(bundle: Path, code_uri: str, s3_client: Any = None) -> list[str]:
    """Upload the packed environment and the entry script under ``code_uri``; returns their URIs."""
    import boto3

    s3 = s3_client or boto3.client("s3")
    bucket, prefix = _split(code_uri)
    s3.upload_file(str(bundle), bucket, f"{prefix}/{BUNDLE_NAME}")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{ENTRY_NAME}", Body=ENTRY_SCRIPT.encode())
    return [f"s3://{bucket}/{prefix}/{name}" for name in (BUNDLE_NAME, ENTRY_NAME)]


def train_emr(settings: PipelineSettings, venv: Path) -> dict[str, Any]:
    """``make train-emr``: pack ``venv``, upload it with the entry script, start the job run."""
    if not settings.emr_code_uri:
        raise ConfigError("EMR Serverless is not configured: set REC_EMR_CODE_URI")
    with tempfile.TemporaryDirectory() as scratch:
        uploaded = upload_code(pack(venv, Path(scratch) / BUNDLE_NAME), settings.emr_code_uri)
    return {"uploaded": uploaded, "application_id": settings.emr_application_id,
            "job_run_id": start_job_run(settings)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.emr --venv DIR``: what ``make train-emr`` runs; settings come from ``REC_*``."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m pipeline.emr", description=main.__doc__)
    parser.add_argument("--venv", type=Path, required=True, help="virtual environment to pack (non-editable)")
    args = parser.parse_args(argv)
    try:
        result = train_emr(PipelineSettings(), args.venv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
