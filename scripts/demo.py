"""``make demo``: local S3 (moto) → pipeline → recommend API (uvicorn) → Streamlit frontend.

Everything runs on 127.0.0.1 with the environment the Lambda function gets in AWS,
except that ``AWS_ENDPOINT_URL_S3`` points boto3 at the local S3. Ctrl-C stops
every process this script started; nothing is left running.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BUCKET = "recsys-artifacts"
PREFIX = "recsys"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(url: str, name: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"demo: {name} exited with code {process.returncode}; see its output above")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"demo: {name} did not answer at {url} within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--ui-port", type=int, default=8501)
    parser.add_argument("--s3-port", type=int, default=5000)
    parser.add_argument("--interactions", type=int, default=100_000)
    args = parser.parse_args()

    ports = {
        "local S3": (args.s3_port, "S3_PORT"),
        "API": (args.api_port, "API_PORT"),
        "frontend": (args.ui_port, "UI_PORT"),
    }
    taken = [f"port {port} ({name}) is taken; choose another with `make demo {var}=...`"
             for name, (port, var) in ports.items() if not port_is_free(port)]  # fmt: skip
    if taken:
        print("demo: " + "\n      ".join(taken), file=sys.stderr)
        return 1

    s3_url = f"http://127.0.0.1:{args.s3_port}"
    api_url = f"http://127.0.0.1:{args.api_port}"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_S3": s3_url,
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "REC_MODEL_URI": f"s3://{BUCKET}/{PREFIX}",
        "REC_OUTPUT": f"s3://{BUCKET}/{PREFIX}",
        "REC_API_URL": api_url,
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start(*command: str, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)
        processes.append(process)
        return process

    def stop_all(*_: object) -> None:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        s3 = start(PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(args.s3_port))
        wait_for(s3_url, "local S3", s3)
        import boto3

        boto3.client("s3", endpoint_url=s3_url, region_name=env["AWS_DEFAULT_REGION"],
                     aws_access_key_id="demo", aws_secret_access_key="demo").create_bucket(Bucket=BUCKET)  # fmt: skip
        print(f"\n== training on {args.interactions:,} synthetic interactions, publishing to s3://{BUCKET}/{PREFIX}")
        subprocess.run([PY, "-m", "pipeline", "run", "--interactions", str(args.interactions)], cwd=ROOT, env=env,
                       check=True)  # fmt: skip
        api = start(PY, "-m", "uvicorn", "app.main:app", "--app-dir", "functions/recommend",
                    "--host", "127.0.0.1", "--port", str(args.api_port), "--no-access-log")  # fmt: skip
        wait_for(f"{api_url}/health", "API", api)
        # From frontend/, so Streamlit picks up frontend/.streamlit/config.toml.
        ui = start(PY, "-m", "streamlit", "run", "Home.py", "--server.address", "127.0.0.1",
                   "--server.port", str(args.ui_port), cwd=ROOT / "frontend")  # fmt: skip
        wait_for(f"http://127.0.0.1:{args.ui_port}/_stcore/health", "frontend", ui)
        print(
            "\n== the demo is up\n"
            f"   frontend   http://127.0.0.1:{args.ui_port}\n"
            f"   API        {api_url}   (docs: {api_url}/docs)\n"
            f"   local S3   {s3_url}   (bucket {BUCKET}, prefix {PREFIX})\n"
            "   Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        print("demo: a process exited; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: stopping")
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"demo: the pipeline failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
