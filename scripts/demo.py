"""``make demo``: local AWS (moto) → pipeline → recommend API (uvicorn) → Streamlit frontend.

Everything runs on 127.0.0.1 with the environment the Lambda function gets in AWS, the deployed
path included (S3 artifacts, the DynamoDB user-state table, the Firehose event log), except that
``AWS_ENDPOINT_URL`` points boto3 at one local moto server. Ctrl-C stops every process this script
started; nothing is left running.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from local_stack import (
    MODEL_CACHE,
    PY,
    ROOT,
    ProcessGroup,
    port_is_free,
    provision_realtime,
    publish_local_model,
    start_demo_experiment,
    wait_for,
)

BUCKET = "recsys-artifacts"
PREFIX = "recsys"
REALTIME = "recsys-users"  # the user-state table and the events stream share the name


SIMULATED_USERS = 400


def simulate_visitors(api_url: str, interactions: int, env: dict[str, str], log: Path) -> None:
    """Simulated users against the API, then one run of the experiment's decision job (output to ``log``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    uri = f"s3://{BUCKET}/{PREFIX}"
    with log.open("w") as out:
        for command in (
            ["simulate", "--api", api_url, "--users", str(SIMULATED_USERS), "--interactions", str(interactions)],
            ["experiment", "evaluate", "--model", uri],
        ):
            if subprocess.run([PY, "-m", "pipeline", *command], cwd=ROOT, env=env, stdout=out, stderr=out).returncode:
                return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--ui-port", type=int, default=8501)
    parser.add_argument("--s3-port", type=int, default=5000)
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--model-cache", type=Path, default=MODEL_CACHE,
                        help="where the last start's models are kept, so the next skips retraining")  # fmt: skip
    args = parser.parse_args()

    ports = {
        "local S3": (args.s3_port, "S3_PORT"),
        "API": (args.api_port, "API_PORT"),
        "frontend": (args.ui_port, "UI_PORT"),
    }
    taken = [f"port {port} ({name}) is taken; choose another with `make demo {var}=...`"
             for name, (port, var) in ports.items() if not port_is_free("127.0.0.1", port)]  # fmt: skip
    if taken:
        print("demo: " + "\n      ".join(taken), file=sys.stderr)
        return 1

    s3_url = f"http://127.0.0.1:{args.s3_port}"
    api_url = f"http://127.0.0.1:{args.api_port}"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": s3_url,  # every service: S3, DynamoDB, Firehose
        "AWS_ENDPOINT_URL_S3": s3_url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "REC_MODEL_URI": f"s3://{BUCKET}/{PREFIX}",
        "REC_API_URL": api_url,
        "REC_USER_TABLE": REALTIME,
        "REC_EVENTS_STREAM": REALTIME,
        # Keep the per-user arrays too, so the dashboard can list and browse the trained users.
        "REC_USER_ARRAYS": "true",
    }
    group = ProcessGroup(env)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C stops it even when started with SIGINT ignored (Python then leaves it ignored: a background job's).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        # The servers' own output (moto's warnings and access log, uvicorn's, Streamlit's) goes to files.
        logs = args.model_cache.parent / "demo-logs"
        s3 = group.start(PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(args.s3_port), log=logs / "moto.log")
        wait_for(s3_url, "local S3", s3, timeout=60, log=logs / "moto.log")
        provision_realtime(s3_url, BUCKET, PREFIX, REALTIME, env["AWS_DEFAULT_REGION"])
        publish_local_model(s3_url, BUCKET, PREFIX, args.interactions, env, cache=args.model_cache)
        start_demo_experiment(s3_url, BUCKET, PREFIX, args.interactions, env)
        api = group.start(PY, "-m", "uvicorn", "app.main:app", "--app-dir", "functions/recommend",
                          "--host", "127.0.0.1", "--port", str(args.api_port), "--no-access-log",
                          "--timeout-graceful-shutdown", "5", log=logs / "api.log")  # fmt: skip
        wait_for(f"{api_url}/health", "API", api, timeout=60, log=logs / "api.log")
        simulation_log = args.model_cache.parent / "demo-experiment.log"
        threading.Thread(target=simulate_visitors, args=(api_url, args.interactions, env, simulation_log),
                         daemon=True).start()  # fmt: skip
        # From frontend/, so Streamlit picks up frontend/.streamlit/config.toml.
        ui = group.start(PY, "-m", "streamlit", "run", "Home.py", "--server.address", "127.0.0.1",
                         "--server.port", str(args.ui_port), cwd=ROOT / "frontend",
                         log=logs / "frontend.log")  # fmt: skip
        wait_for(
            f"http://127.0.0.1:{args.ui_port}/_stcore/health", "frontend", ui, timeout=60, log=logs / "frontend.log"
        )
        print(
            "\n== the demo is up\n"
            f"   frontend   http://127.0.0.1:{args.ui_port}\n"
            f"   API        {api_url}   (docs: {api_url}/docs)\n"
            f"   local AWS  {s3_url}   (S3 bucket {BUCKET}, prefix {PREFIX}; DynamoDB + Firehose {REALTIME})\n"
            f"   an experiment runs (the dashboard's Experiments page); simulated visitors log to {simulation_log}\n"
            f"   server logs in {logs}/ (moto.log, api.log, frontend.log)\n"
            "   Ctrl-C stops everything.\n",
            flush=True,
        )
        group.wait_while_running()
        print("demo: a process exited; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: stopping")
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"demo: the pipeline failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    finally:
        group.stop()


if __name__ == "__main__":
    sys.exit(main())
