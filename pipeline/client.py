"""The recommend API as a client calls it: over HTTP, one keep-alive connection, plain ``http.client``.

What the pipeline's tools that drive a running service use (the simulated users, the cold-start study): the
pipeline reaches the service only through its front door, never by importing it. No retries hide a failure.
:func:`service_command` is how every local tool starts the service.
"""

from __future__ import annotations

import json
import socket
import sys
from http.client import HTTPConnection, HTTPSConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

SERVICE_DIR = Path(__file__).resolve().parents[1] / "functions" / "recommend"  # the service's package, ``app``
SERVICE_APP = "app.main:app"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on a moment ago (the caller binds it soon after; a clash shows as a bind error)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def service_command(port: int, *options: str, host: str = "127.0.0.1") -> list[str]:
    """The command that serves the API with uvicorn on ``host:port``, from any working directory: the one way
    every local tool (the demo, the benchmarks, the cold-start study, the tests) starts it. ``options`` are
    uvicorn's (``--no-access-log``, ``--log-level warning``, ...); settings come from the ``REC_*`` environment."""
    return [sys.executable, "-m", "uvicorn", SERVICE_APP, "--app-dir", str(SERVICE_DIR), "--host", host,
            "--port", str(port), *options]  # fmt: skip


class Api:
    """One keep-alive connection to the API at ``url``; answers are ``(status, parsed JSON body)``."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parsed = urlparse(url.rstrip("/"))
        connection = HTTPSConnection if parsed.scheme == "https" else HTTPConnection
        self._connection = connection(parsed.netloc, timeout=timeout)
        self._base = parsed.path

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._request("POST", path, json.dumps(body))

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        return self._request("GET", path, None)

    def close(self) -> None:
        self._connection.close()

    def _request(self, method: str, path: str, body: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"content-type": "application/json"} if body is not None else {}
        self._connection.request(method, self._base + path, body, headers)
        response = self._connection.getresponse()
        data = response.read()
        try:
            answer = json.loads(data or b"{}")
        except ValueError:  # not the app's JSON (a proxy's page, a server that died mid-answer): keep it to report
            answer = {"body": data[:300].decode(errors="replace")}
        return response.status, answer if isinstance(answer, dict) else {"body": answer}
