"""``make serve MODEL=DIR|s3://bucket/prefix``: serve a published model over HTTP with uvicorn.

The same app as the Lambda function and ``make demo`` (``functions/recommend/app``), on 127.0.0.1 by
default. It checks first that a model is published at ``--model`` and names the version it found; the
service then loads it on the first request and picks up newer versions as they are published. For an
S3 location boto3's own variables apply (``AWS_ENDPOINT_URL_S3`` for a local S3, credentials, region).
Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from processes import port_is_free

from pipeline.client import SERVICE_APP, SERVICE_DIR
from reccore.errors import RecError
from reccore.settings import DEFAULT_MODEL_URI, ServiceSettings, env_name
from reccore.storage import open_store
from reccore.versions import read_latest_version

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/serve.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    default = f"{env_name('model_uri')}, else {DEFAULT_MODEL_URI}"
    parser.add_argument(
        "--model", help=f"directory or s3://bucket/prefix the pipeline published to (default: {default})"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not port_is_free(args.host, args.port):
        print(f"serve: port {args.port} is taken; choose another with `make serve API_PORT=...`", file=sys.stderr)
        return 2
    uri = args.model or ServiceSettings().model_uri
    if "://" not in uri:
        uri = str(Path(uri).resolve())  # the service must find the directory whatever its working directory
    try:
        version = read_latest_version(open_store(uri))
    except (RecError, BotoCoreError, ClientError) as exc:
        print(f"serve: no model to serve at {uri}: {exc}", file=sys.stderr)
        print("serve: publish one first, e.g. `.venv/bin/python -m pipeline run --output DIR`", file=sys.stderr)
        return 2
    os.environ[env_name("model_uri")] = uri
    base = f"http://{args.host}:{args.port}"
    print(f"serve: {version} from {uri}\nserve: API {base}  (docs: {base}/docs); Ctrl-C stops", flush=True)

    import uvicorn  # after the environment is set: the app reads its settings on import

    # No access log: the app writes one JSON line per request itself.
    uvicorn.run(SERVICE_APP, app_dir=str(SERVICE_DIR), host=args.host, port=args.port, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
