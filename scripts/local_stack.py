"""What ``demo.py`` and ``sam_local.py`` share beyond their processes (``processes.py``): a local model and AWS.

Imported by those scripts (Python puts a script's own folder on ``sys.path``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from processes import PY, ROOT, ProcessGroup

# What would point a child at real AWS instead of the local one: a service's own endpoint variable
# (AWS_ENDPOINT_URL_DYNAMODB, ...) wins over AWS_ENDPOINT_URL, and a profile or session over dummy keys.
AWS_OVERRIDES = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN")


def local_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the AWS variables that would override a local AWS (see ``AWS_OVERRIDES``)."""
    return {name: value for name, value in environ.items() if not name.startswith(AWS_OVERRIDES)}


MODEL_CACHE = ROOT / ".cache" / "demo-models"  # the local S3 lives only as long as the demo: keep its models here


def publish_local_model(s3_url: str, bucket: str, prefix: str, interactions: int, env: Mapping[str, str],
                        cache: Path | None = None, group: ProcessGroup | None = None) -> None:  # fmt: skip
    """Create ``bucket`` on the local S3 and publish a synthetic model to ``s3://bucket/prefix``.

    With ``cache``, the models published by an earlier start are put back first and the pipeline runs with
    ``--reuse``: it retrains only if the input or the settings changed. The models are then saved to ``cache``.
    With ``group``, the pipeline runs in it (see :meth:`ProcessGroup.run`).
    """
    import boto3

    from reccore.layout import MODELS_DIR

    s3 = boto3.client("s3", endpoint_url=s3_url, region_name=env["AWS_DEFAULT_REGION"],
                      aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
    s3.create_bucket(Bucket=bucket)
    models = f"{prefix}/{MODELS_DIR}/"
    reuse = []
    if cache is not None and (cache / "LATEST").is_file():
        for path in sorted(p for p in cache.rglob("*") if p.is_file()):
            s3.upload_file(str(path), bucket, models + path.relative_to(cache).as_posix())
        reuse = ["--reuse"]
        print(f"\n== restored the models of the last start from {cache}", flush=True)
    print(f"\n== training on {interactions:,} synthetic interactions, publishing to s3://{bucket}/{prefix}"
          + (" (unless the restored model was trained on the same input and settings)" if reuse else ""),
          flush=True)  # fmt: skip
    command = [PY, "-m", "pipeline", "run", "--output", f"s3://{bucket}/{prefix}", "--interactions",
               str(interactions), *reuse]  # fmt: skip
    if group is None:
        subprocess.run(command, cwd=ROOT, env={**env, "AWS_ENDPOINT_URL_S3": s3_url}, check=True)
    else:
        group.run(*command, env={**env, "AWS_ENDPOINT_URL_S3": s3_url})
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=models):
            for entry in page.get("Contents", []):
                target = cache / entry["Key"][len(models) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, entry["Key"], str(target))


def start_demo_experiment(s3_url: str, bucket: str, prefix: str, interactions: int, group: ProcessGroup) -> str:
    """Publish a challenger beside the live model (8 factors, untuned: a weaker model) and start an experiment
    serving it to half of the users; LATEST stays on the champion. The pipeline runs in ``group``. Returns the
    challenger's version."""
    import json

    import boto3

    from reccore.layout import LATEST_KEY

    uri = f"s3://{bucket}/{prefix}"
    child = {**group.env, "AWS_ENDPOINT_URL_S3": s3_url}
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name=group.env["AWS_DEFAULT_REGION"],
                      aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
    latest = f"{prefix}/{LATEST_KEY}"
    champion = s3.get_object(Bucket=bucket, Key=latest)["Body"].read()
    print("\n== publishing a challenger (8 factors, untuned) for the experiment", flush=True)
    out = group.run(PY, "-m", "pipeline", "run", "--output", uri, "--interactions", str(interactions),
                    "--factors", "8", "--no-tune", "--no-reuse", "--json", env=child, capture=True)  # fmt: skip
    challenger = str(json.loads(out)["version"])
    s3.put_object(Bucket=bucket, Key=latest, Body=champion)  # the champion stays live
    group.run(PY, "-m", "pipeline", "experiment", "start", "--model", uri, "--challenger", challenger,
              "--share", "0.5", env=child)  # fmt: skip
    return challenger


def provision_realtime(endpoint: str, bucket: str, prefix: str, name: str, region: str) -> None:
    """The real-time loop's AWS parts on the local moto server: the user-state table and the events stream.

    The stream delivers to ``s3://bucket/prefix/events/`` as the deployed stack's does (template.yaml).
    """
    import boto3

    from reccore.eventlog import create_stream
    from reccore.userstate.table import create_table

    options = {"endpoint_url": endpoint, "region_name": region, "aws_access_key_id": "local",
               "aws_secret_access_key": "local"}  # fmt: skip
    create_table(boto3.client("dynamodb", **options), name)
    create_stream(boto3.client("firehose", **options), name, bucket, prefix)


def sam_local_env_vars(endpoint: str, realtime: str) -> dict[str, dict[str, str]]:
    """``sam local --env-vars`` contents: each function's AWS calls go to the local moto server at ``endpoint``,
    with the user-state table and event stream named ``realtime`` (see :func:`provision_realtime`)."""
    return {
        "RecommendFunction": {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "AWS_ENDPOINT_URL_FIREHOSE": endpoint,
            "REC_USER_TABLE": realtime,
            "REC_EVENTS_STREAM": realtime,
        },
        "PipelineFunction": {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "REC_USER_TABLE": realtime,
        },
    }


@contextmanager
def local_aws() -> Iterator[dict[str, str]]:
    """moto's server in this process on a free loopback port, for the benchmarks; yields the environment that
    points boto3 at it for every service (S3, DynamoDB, Firehose), with dummy credentials. Stopped on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        yield {
            "AWS_ENDPOINT_URL": endpoint,
            **{f"AWS_ENDPOINT_URL_{service}": endpoint for service in ("S3", "DYNAMODB", "FIREHOSE")},
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "REC_LOG_LEVEL": "WARNING",
        }
    finally:
        server.stop()
