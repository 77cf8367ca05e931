"""``make sam-local``: local S3 (moto) → pipeline → ``sam build`` → ``sam local start-api`` on 127.0.0.1:3000.

The API runs in the Lambda container images, as in AWS; only the S3 is local. Ctrl-C stops every process
this script started (and the docker engine, if it started one); nothing is left running.

* Docker: the engine that answers, else ``scripts/start_dockerd.sh`` (data root ``$DOCKERD_DATA_ROOT``,
  default ``.cache/dockerd``, so built images survive between runs).
* Base image: ``scripts/standin_base_image.sh`` builds an offline stand-in only if the real
  ``public.ecr.aws/lambda/python`` image can be neither found nor pulled.
* The local S3 listens on docker's bridge address (usually 172.17.0.1), not 127.0.0.1: sam puts the
  function's container on the bridge even with ``--docker-network host`` (aws/aws-sam-cli#4236), and
  the host reaches that address too. ``--env-vars`` points the functions' boto3 at it
  (template.yaml declares ``AWS_ENDPOINT_URL_S3`` empty so that sam lets it be set).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from local_stack import local_environ, provision_realtime, publish_local_model, sam_local_env_vars
from processes import PY, ROOT, Interrupted, ProcessGroup, port_is_free, wait_for

SAM = ROOT / ".venv-sam" / "bin" / "sam"
BUCKET, PREFIX = "recsys-local", "recsys"  # samconfig.toml's local parameter_overrides name this location
REALTIME = (
    "recsys-users"  # the local user-state table and events stream (template: UserStateTable, EventsDeliveryStream)
)


def say(message: str) -> None:
    print(f"sam-local: {message}", flush=True)


def docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def bridge_address() -> str:
    """The host's address on docker's default bridge (IPAM's gateway, else the bridge interface's address)."""
    bridge = json.loads(subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True, text=True,
                                       check=True, timeout=30).stdout)[0]  # fmt: skip
    gateways = [c["Gateway"] for c in bridge["IPAM"]["Config"] or [] if c.get("Gateway")]
    if gateways:
        return str(gateways[0])
    name = bridge["Options"].get("com.docker.network.bridge.name", "docker0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
    return socket.inet_ntoa(packed[20:24])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("SAM_PORT", 3000)), help="API port (env SAM_PORT)"
    )
    parser.add_argument("--s3-port", type=int, default=int(os.environ.get("SAM_S3_PORT", 5000)),
                        help="local S3 port on the docker bridge address (env SAM_S3_PORT)")  # fmt: skip
    parser.add_argument("--interactions", type=int, default=100_000, help="synthetic interactions to train on")
    args = parser.parse_args()

    if not SAM.exists():
        print(f"sam-local: {SAM} is missing; `make sam-local` installs it", file=sys.stderr)
        return 1
    if not port_is_free("127.0.0.1", args.port):
        print(f"sam-local: port {args.port} (API) is taken; choose another with `make sam-local SAM_PORT=...`",
              file=sys.stderr)  # fmt: skip
        return 1

    # sam passes these credentials into the containers: never real ones, and no endpoint but the local S3.
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    env = {**local_environ(os.environ), "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
           "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": region}  # fmt: skip
    group = ProcessGroup(env)
    dockerd_pid: int | None = None
    env_vars: Path | None = None

    # A stop signal is recorded and acted on at the next wait (raised at once, it could be lost inside Popen).
    group.stop_on_signals()
    try:
        if not docker_answers():
            data_root = Path(os.environ.get("DOCKERD_DATA_ROOT", ROOT / ".cache" / "dockerd"))
            subprocess.run([ROOT / "scripts" / "start_dockerd.sh", data_root], cwd=ROOT, check=True, timeout=120)
            dockerd_pid = int((data_root / "dockerd.pid").read_text())
        group.run(ROOT / "scripts" / "standin_base_image.sh", timeout=1200)

        host = bridge_address()
        if not port_is_free(host, args.s3_port):
            print(f"sam-local: port {args.s3_port} on {host} (local S3) is taken; choose another with "
                  "`make sam-local SAM_S3_PORT=...`", file=sys.stderr)  # fmt: skip
            return 1
        s3_url = f"http://{host}:{args.s3_port}"
        s3 = group.start(PY, "-m", "moto.server", "-H", host, "-p", str(args.s3_port))
        wait_for(s3_url, "local S3", s3, timeout=60, group=group)
        publish_local_model(s3_url, BUCKET, PREFIX, args.interactions, env, group=group)

        say("sam build")
        group.run(SAM, "build", timeout=1800)

        env_vars = Path(tempfile.mkdtemp(prefix="sam-local-")) / "env.json"
        provision_realtime(s3_url, BUCKET, PREFIX, REALTIME, env["AWS_DEFAULT_REGION"])
        env_vars.write_text(json.dumps(sam_local_env_vars(s3_url, REALTIME)))
        api_url = f"http://127.0.0.1:{args.port}"
        # samconfig.toml's [default.local_start_api] supplies the rest (skip_pull_image, warm containers,
        # the bucket and prefix).
        api = group.start(SAM, "local", "start-api", "--host", "127.0.0.1", "--port", str(args.port),
                          "--env-vars", env_vars)  # fmt: skip
        # The first request builds sam's emulator layer and starts the container; wait for it here.
        wait_for(f"{api_url}/health", "sam local start-api", api, timeout=300, group=group)
        print(
            "\n== sam local is up (the recommend function's container image, local S3)\n"
            f"   API        {api_url}   (docs: {api_url}/docs)\n"
            f"   local S3   {s3_url}   (bucket {BUCKET}, prefix {PREFIX})\n"
            f"   invoke     AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local {SAM.relative_to(ROOT)} local invoke "
            f"RecommendFunction -e events/health.json --env-vars {env_vars}\n"
            "   Ctrl-C stops everything.\n",
            flush=True,
        )
        group.wait_while_running()
        print("sam-local: a process exited; stopping the others", file=sys.stderr)
        return 1
    except Interrupted as stop:
        print(f"\nsam-local: stopping ({stop})")
        return 0 if stop.signum == signal.SIGINT else 128 + stop.signum
    except subprocess.CalledProcessError as exc:
        print(f"sam-local: {' '.join(map(str, exc.cmd))} failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    finally:
        # SIGINT first: sam removes its warm containers on Ctrl-C.
        for process in group.stop(signal.SIGINT, timeout=30):
            print(f"sam-local: killed {process.args!r}; list what it may have left with "
                  "`docker ps --filter label=sam.cli.container.type=lambda`", file=sys.stderr)  # fmt: skip
        if env_vars is not None:
            shutil.rmtree(env_vars.parent, ignore_errors=True)
        if dockerd_pid is not None:
            say(f"stopping the docker engine it started (pid {dockerd_pid})")
            os.kill(dockerd_pid, signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
