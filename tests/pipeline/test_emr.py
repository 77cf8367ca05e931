"""Submitting large inputs to EMR Serverless, end to end over HTTP against moto's server."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.emr import BUNDLE_NAME, ENTRY_NAME, job_arguments, train_emr
from pipeline.handler import handler
from reccore.errors import ConfigError
from reccore.settings import PipelineSettings

BUCKET = "emr-test-bucket"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto's server in a thread on a free port; every boto3 client points at it over HTTP."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3, emr = boto3.client("s3"), boto3.client("emr-serverless")
    s3.create_bucket(Bucket=BUCKET)
    app = emr.create_application(name="recsys-spark", releaseLabel="emr-7.5.0", type="SPARK")
    for name, value in {"REC_EMR_APPLICATION_ID": app["applicationId"], "REC_EMR_CODE_URI": f"s3://{BUCKET}/recsys/emr",
                        "REC_EMR_JOB_ROLE_ARN": "arn:aws:iam::123456789012:role/spark-job"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    yield {"s3": s3, "emr": emr, "application_id": app["applicationId"]}
    server.stop()


def _spark_submit(aws: dict[str, Any], job_run_id: str) -> dict[str, Any]:
    run = aws["emr"].get_job_run(applicationId=aws["application_id"], jobRunId=job_run_id)["jobRun"]
    assert run["executionRole"] == "arn:aws:iam::123456789012:role/spark-job"
    return dict(run["jobDriver"]["sparkSubmit"])


def test_train_emr_uploads_the_packed_environment_and_starts_the_job(aws: dict[str, Any], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # small but real
    settings = PipelineSettings(source=f"s3://{BUCKET}/recsys/data/interactions/", output=f"s3://{BUCKET}/recsys")
    result = train_emr(settings, venv)

    bundle = tmp_path / "bundle.tar.gz"
    aws["s3"].download_file(BUCKET, f"recsys/emr/{BUNDLE_NAME}", str(bundle))
    with tarfile.open(bundle) as archive:
        names = archive.getnames()
    assert "bin/python" in names and "bin/activate" in names  # venv-pack's layout, unpacked as ./environment
    entry = aws["s3"].get_object(Bucket=BUCKET, Key=f"recsys/emr/{ENTRY_NAME}")["Body"].read().decode()
    assert "from pipeline.cli import main" in entry

    submit = _spark_submit(aws, result["job_run_id"])
    assert submit["entryPoint"] == f"s3://{BUCKET}/recsys/emr/{ENTRY_NAME}"
    assert submit["entryPointArguments"] == job_arguments(settings)
    assert submit["entryPointArguments"][:3] == ["run", "--engine", "spark"]
    assert f"spark.archives=s3://{BUCKET}/recsys/emr/{BUNDLE_NAME}#environment" in submit["sparkSubmitParameters"]
    assert "PYSPARK_PYTHON=./environment/bin/python" in submit["sparkSubmitParameters"]


def test_lambda_hands_large_inputs_to_emr_and_returns_the_job_id(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        aws["s3"].put_object(Bucket=BUCKET, Key=f"recsys/data/interactions/part-{n}.parquet", Body=b"x" * 400)
    monkeypatch.setenv("REC_SPARK_THRESHOLD_BYTES", "1000")
    event = {"source": f"s3://{BUCKET}/recsys/data/interactions/", "output": f"s3://{BUCKET}/recsys"}
    answer = handler(event, None)
    assert answer["engine"] == "emr-serverless" and answer["input_bytes"] == 1200
    submit = _spark_submit(aws, answer["job_run_id"])
    assert "--source" in submit["entryPointArguments"]
    assert submit["entryPointArguments"][submit["entryPointArguments"].index("--source") + 1] == event["source"]


def test_small_inputs_stay_in_the_lambda(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.emr import dispatch

    aws["s3"].put_object(Bucket=BUCKET, Key="recsys/data/small.csv", Body=b"user_id,item_id\nu1,i1\n")
    settings = PipelineSettings(source=f"s3://{BUCKET}/recsys/data/small.csv", spark_threshold_bytes=1000)
    assert dispatch(settings) is None
    at_threshold = dispatch(settings.model_copy(update={"spark_threshold_bytes": 22}))  # the file is 22 bytes
    assert at_threshold is not None and at_threshold["input_bytes"] == 22


def test_unconfigured_emr_is_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.emr import start_job_run

    monkeypatch.delenv("REC_EMR_APPLICATION_ID", raising=False)
    with pytest.raises(ConfigError, match="REC_EMR_APPLICATION_ID"):
        start_job_run(PipelineSettings(emr_application_id=None, emr_job_role_arn="r", emr_code_uri="s3://b/p"))


def test_job_arguments_reproduce_every_run_setting() -> None:
    from pipeline.cli import build_parser
    from pipeline.cli_run import RUN_OPTIONS, RUN_SWITCHES

    settings = PipelineSettings(
        source="s3://b/data/", items="s3://b/items.parquet", events="s3://b/app/events/", output="s3://b/app",
        factors=80, weighting="tfidf", scaling=0.7, shrinkage=1.5, pop_alpha=0.3, min_rating=2.0, index="auto",
        user_table="users", user_arrays=False, centre=True, tune=False, force=True, retention=3,
    )  # fmt: skip
    parsed = vars(build_parser(PipelineSettings()).parse_args(job_arguments(settings)))
    for name in (*RUN_OPTIONS, *RUN_SWITCHES, "force"):
        expected = "spark" if name == "engine" else getattr(PipelineSettings(), name) if name in (
            "master", "driver_memory") else getattr(settings, name)  # fmt: skip
        assert parsed[name] == expected, name


def test_the_driver_grows_with_the_input_up_to_the_largest_worker() -> None:
    from pipeline.emr import driver_conf

    small, hundred_million = driver_conf(None), driver_conf(1_083_235_254)  # the 100M benchmark's Parquet
    assert small == {"spark.driver.cores": "4", "spark.driver.memory": "8g", "spark.driver.memoryOverhead": "4g"}
    assert hundred_million["spark.driver.cores"] == "4"
    assert int(hundred_million["spark.driver.memoryOverhead"][:-1]) >= 10  # the measured Python peak, 10.0 GB
    assert driver_conf(5_000_000_000)["spark.driver.cores"] == "8" and driver_conf(10**10)["spark.driver.cores"] == "16"
    with pytest.raises(ConfigError, match="more than EMR Serverless's largest worker"):
        driver_conf(20_000_000_000)
