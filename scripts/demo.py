"""``make demo``: local AWS (moto) → pipeline → recommend API (uvicorn) → Streamlit frontend.

Everything runs on 127.0.0.1 with the environment the Lambda function gets in AWS, the deployed
path included (S3 artifacts, the DynamoDB user-state table, the Firehose event log), except that
``AWS_ENDPOINT_URL`` points boto3 at one local moto server. Ctrl-C stops every process this script
started; nothing is left running. So do SIGTERM and SIGHUP, at any stage (exit status 128 + the signal's
number; 0 after Ctrl-C, the usual way to stop), and if this script is killed outright, Linux kills its
children too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from local_stack import MODEL_CACHE, local_environ, provision_realtime, publish_local_model, start_demo_experiment
from processes import PY, ROOT, Interrupted, ProcessGroup, port_is_free, wait_for

from pipeline.client import service_command

BUCKET = "recsys-artifacts"
PREFIX = "recsys"
REALTIME = "recsys-users"  # the user-state table and the events stream share the name


SIMULATED_USERS = 400


class Visitors:
    """Simulated users against the API, then one run of the experiment's decision job, output to ``log``.

    They run one after the other in ``group``, moved on by :meth:`step` from the main loop rather than from a
    thread, so that every child starts while this script has one thread (see ``ProcessGroup.start``).
    """

    def __init__(self, group: ProcessGroup, api_url: str, interactions: int, log: Path) -> None:
        self.group, self.log = group, log
        self.pending = [
            ["simulate", "--api", api_url, "--users", str(SIMULATED_USERS), "--interactions", str(interactions)],
            ["experiment", "evaluate", "--model", f"s3://{BUCKET}/{PREFIX}"],
        ]
        self.current: subprocess.Popen[bytes] | None = None
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b"")

    def step(self) -> None:
        """Start the next command once the current one has succeeded; after a failure, start nothing more."""
        if self.current is not None and (self.current.poll() is None or self.current.returncode):
            return
        if self.pending:
            self.current = self.group.start(PY, "-m", "pipeline", *self.pending.pop(0), log=self.log, job=True)


def say(text: str) -> None:
    """Print, unless the terminal has gone (after SIGHUP): stopping the children matters more than saying so."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


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
        **local_environ(os.environ),  # the local AWS replaces whatever the shell points at
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
    # A stop signal is only recorded, and acted on at the next wait: raised at once, it could be lost in Popen.
    # Every child runs in a session of its own (a signal to this process group reaches none of them): this script
    # stops each one, at whatever stage the signal comes.
    group.stop_on_signals()
    try:
        # The servers' own output (moto's warnings and access log, uvicorn's, Streamlit's) goes to files.
        logs = args.model_cache.parent / "demo-logs"
        s3 = group.start(PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(args.s3_port), log=logs / "moto.log")
        wait_for(s3_url, "local S3", s3, timeout=60, log=logs / "moto.log", group=group)
        provision_realtime(s3_url, BUCKET, PREFIX, REALTIME, env["AWS_DEFAULT_REGION"])
        publish_local_model(s3_url, BUCKET, PREFIX, args.interactions, env, cache=args.model_cache, group=group)
        start_demo_experiment(s3_url, BUCKET, PREFIX, args.interactions, group)
        api = group.start(*service_command(args.api_port, "--no-access-log", "--timeout-graceful-shutdown", "5"),
                          log=logs / "api.log")  # fmt: skip
        wait_for(f"{api_url}/health", "API", api, timeout=60, log=logs / "api.log", group=group)
        simulation_log = args.model_cache.parent / "demo-experiment.log"
        visitors = Visitors(group, api_url, args.interactions, simulation_log)
        # From frontend/, so Streamlit picks up frontend/.streamlit/config.toml.
        ui = group.start(PY, "-m", "streamlit", "run", "Home.py", "--server.address", "127.0.0.1",
                         "--server.port", str(args.ui_port), cwd=ROOT / "frontend",
                         log=logs / "frontend.log")  # fmt: skip
        wait_for(f"http://127.0.0.1:{args.ui_port}/_stcore/health", "frontend", ui, timeout=60,
                 log=logs / "frontend.log", group=group)  # fmt: skip
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
        group.wait_while_running(tick=visitors.step)
        print("demo: a process exited; stopping the others", file=sys.stderr)
        return 1
    except Interrupted as stop:
        say(f"\ndemo: stopping ({stop})")
        return 0 if stop.signum == signal.SIGINT else 128 + stop.signum
    except subprocess.CalledProcessError as exc:
        print(f"demo: the pipeline failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    finally:
        group.stop()


if __name__ == "__main__":
    sys.exit(main())
