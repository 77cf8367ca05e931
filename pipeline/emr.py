"""Large inputs train on EMR Serverless (Spark): size the input, pack the code, start a job run.

The pipeline Lambda calls :func:`dispatch`: inputs under ``spark_threshold_bytes`` train in the Lambda as
before; larger ones (or ``engine: spark``) start an EMR Serverless job run of ``python -m pipeline run
--engine spark`` and return its id. ``make train-emr`` calls :func:`train_emr`: pack a virtual environment
with venv-pack, upload it and the entry script under ``emr_code_uri``, start the run. The archive is
unpacked as ``./environment`` on the driver and executors (the EMR Serverless docs' recipe).
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline.cli_run import RUN_OPTIONS, RUN_SWITCHES
from reccore.errors import ConfigError
from reccore.settings import PipelineSettings

BUNDLE_NAME = "pipeline-env.tar.gz"
ENTRY_NAME = "entry.py"
ENTRY_SCRIPT = '''"""EMR Serverless entry point: ``python -m pipeline`` with the job's arguments."""
import sys

from pipeline.cli import main

sys.exit(main(sys.argv[1:]))
'''
# Spark settings of the job; the driver's are sized from the input by driver_conf.
SPARK_CONF = {
    "spark.executor.cores": "4",
    "spark.executor.memory": "16g",
    "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": "./environment/bin/python",
    "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": "./environment/bin/python",
    "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python",
}


# The driver holds the log's columns and assembles the artifacts in Python (the JVM only streams the
# collected Arrow batches through), so its memory grows with the interactions. Measured at 100M with
# `make bench-spark` (docs/pipeline.md): the Parquet input is ~10.8 bytes per interaction and the Python driver
# peaked at 8.8 GB (~88 bytes per interaction; 100 leaves headroom); a 6g heap was enough for the local
# driver *and* its executors, so the EMR driver's heap (no executors in it) gets 8-16g.
PARQUET_BYTES_PER_INTERACTION = 10.8
PYTHON_BYTES_PER_INTERACTION = 100
JVM_BYTES_PER_INTERACTION = 16
# EMR Serverless worker sizes: the most memory (GB) a worker of this many vCPUs may have.
WORKER_MEMORY_GB = {4: 30, 8: 60, 16: 120}


def driver_conf(input_bytes: int | None) -> dict[str, str]:
    """Driver cores, heap and overhead (where the Python driver lives) for an input of ``input_bytes``.

    Raises
    ------
    ConfigError
        The estimate exceeds EMR Serverless's largest worker.
    """
    interactions = (input_bytes or 0) / PARQUET_BYTES_PER_INTERACTION
    heap = min(16, max(8, math.ceil(interactions * JVM_BYTES_PER_INTERACTION / 2**30)))
    overhead = max(4, math.ceil(interactions * PYTHON_BYTES_PER_INTERACTION / 2**30) + 2)
    cores = next((c for c, most in WORKER_MEMORY_GB.items() if heap + overhead <= most), None)
    if cores is None:
        raise ConfigError(
            f"an input of {(input_bytes or 0) / 1e9:.1f} GB (~{interactions / 1e6:,.0f}M interactions) needs "
            f"~{heap + overhead} GB on the Spark driver, more than EMR Serverless's largest worker "
            f"({max(WORKER_MEMORY_GB.values())} GB); split the input by time and train on the newest part"
        )
    return {"spark.driver.cores": str(cores), "spark.driver.memory": f"{heap}g",
            "spark.driver.memoryOverhead": f"{overhead}g"}  # fmt: skip


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
    """The ``python -m pipeline`` arguments that reproduce ``settings`` on Spark (every run option)."""
    arguments = ["run", "--engine", "spark"]
    for name in RUN_OPTIONS:
        value = getattr(settings, name)
        if value is not None and name not in ("engine", "master", "driver_memory"):  # the job's own, on EMR
            arguments += [f"--{name.replace('_', '-')}", str(value)]
    for name in RUN_SWITCHES:
        value = getattr(settings, name)
        if value is not None:
            arguments.append(f"--{'' if value else 'no-'}{name.replace('_', '-')}")
    return [*arguments, "--json"] + (["--force"] if settings.force else [])


def start_job_run(settings: PipelineSettings, emr_client: Any = None, input_size: int | None = None) -> str:
    """Start the training job on EMR Serverless, its driver sized for ``input_size`` bytes; returns the run id."""
    missing = [n for n in ("emr_application_id", "emr_job_role_arn", "emr_code_uri") if not getattr(settings, n)]
    if missing:
        raise ConfigError(f"EMR Serverless is not configured: set {', '.join('REC_' + m.upper() for m in missing)}")
    import boto3

    emr = emr_client or boto3.client("emr-serverless")
    code = str(settings.emr_code_uri).rstrip("/")
    conf = {"spark.archives": f"{code}/{BUNDLE_NAME}#environment", **driver_conf(input_size), **SPARK_CONF}
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
            "job_run_id": start_job_run(settings, emr_client, size)}  # fmt: skip


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
    size = input_bytes(settings.source)
    return {"uploaded": uploaded, "application_id": settings.emr_application_id, "input_bytes": size,
            "job_run_id": start_job_run(settings, input_size=size)}  # fmt: skip


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
