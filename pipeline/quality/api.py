"""The recommend service as a client calls it: over HTTP, in a process of its own ("through the front door").

The offline cold-start study publishes each model it asks about to a temporary directory (``reccore``'s
``publish``, as ``python -m pipeline run --output DIR`` does), starts the service on it (``uvicorn
app.main:app`` from ``functions/recommend``, on a free loopback port, no user-state table) and POSTs JSON
bodies to ``/recommend``: the body limit, the request model's validation and parsing and the route are the
deployed ones. The pipeline never imports the service's package (``app``): it needs its files on disk and
the ``serve`` extra (uvicorn, FastAPI) in this interpreter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.client import Api, free_port, service_command
from pipeline.data import InteractionLog
from reccore.events import EVENT_TYPES, event_strength
from reccore.layout import Manifest
from reccore.loading import load_model
from reccore.model import Model
from reccore.recommend import MAX_HISTORY
from reccore.settings import env_name
from reccore.storage import open_store
from reccore.versions import publish

# Bounds, not expectations: the service starts and loads a MovieLens model in ~3 s here.
START_SECONDS = 120.0
STOP_SECONDS = 10.0
REQUEST_SECONDS = 60.0


class Service:
    """``POST /recommend`` of the service at ``url``, answering with ``model``; answers are item positions."""

    def __init__(self, url: str, model: Model, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.model = model  # the published files as loaded here: the id <-> position maps of the answers
        self.process = process
        self._api = Api(url, timeout=REQUEST_SECONDS)

    def recommend(self, body: dict[str, Any]) -> dict[str, Any]:
        """The response JSON of ``POST /recommend`` with ``body``; raises if the service does not answer 200."""
        status, answer = self._api.post("/recommend", body)
        if status != 200:
            raise RuntimeError(f"/recommend answered {status}: {str(answer)[:300]}")
        return answer

    def ranked(self, body: dict[str, Any]) -> list[int]:
        """Item positions of ``POST /recommend``'s answer, best first."""
        return [self.model.item_index[item["item_id"]] for item in self.recommend(body)["items"]]

    def close(self) -> None:
        self._api.close()


@contextmanager
def serving(manifest: Manifest, files: dict[str, bytes]) -> Iterator[Service]:
    """The service, in a process of its own, answering with the model of ``manifest`` and ``files``.

    The model is published to a temporary directory and the service started on it with its defaults (the
    ``REC_*`` variables of this process are not passed on) and no user-state table; the process is stopped,
    and the directory removed, however the block ends.
    """
    with tempfile.TemporaryDirectory(prefix="recsys-study-") as scratch:
        root = Path(scratch)
        store = open_store(str(root / "models"))
        version = publish(store, manifest, files, retention=1).version
        model = load_model(store, version, cache_dir=str(root / "cache"))
        env = {name: value for name, value in os.environ.items() if not name.startswith("REC_")}
        env.update({
            env_name("model_uri"): store.uri,
            env_name("user_table"): "",  # user state in process memory, on top of the model's histories
            env_name("cache_dir"): str(root / "cache"),
            env_name("log_level"): "WARNING",  # not a line per request
        })  # fmt: skip
        port = free_port()
        log = root / "service.log"
        command = service_command(port, "--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "60")
        with log.open("wb") as out:  # the child keeps its own descriptor
            process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # fmt: skip
        service = None
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, version, process, log)
            service = Service(url, model, process)
            yield service
        finally:
            if service is not None:
                service.close()
            _stop(process)


def _wait_ready(url: str, version: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``GET /health`` (it loads the model) until it names ``version``; fail if the process exits or time is up."""
    deadline = time.monotonic() + START_SECONDS
    answer: object = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with code {process.returncode} before answering:\n{_tail(log)}")
        api = Api(url, timeout=REQUEST_SECONDS)
        try:
            status, body = api.get("/health")
        except OSError:  # not listening yet
            status, body = 0, {}
        finally:
            api.close()
        if status == 200 and body.get("model_version") == version:
            return
        if status not in (0, 503):  # 503: the model is still loading
            raise RuntimeError(f"/health answered {status}: {str(body)[:300]}\n{_tail(log)}")
        answer = body or answer
        time.sleep(0.2)
    raise RuntimeError(f"the service did not serve {version} within {START_SECONDS:.0f} s ({answer}):\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the service's process group, then SIGKILL it if it has not exited within ``STOP_SECONDS``."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(STOP_SECONDS)
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_SECONDS)


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def history_body(log: InteractionLog, rows: np.ndarray, k: int) -> dict[str, Any]:
    """The body a client sends for the interactions ``rows`` of ``log`` (oldest first): one object each.

    Each carries its event, its timestamp and, when its strength is not the event's default (a rating,
    an explicit weight), its value; a history longer than the API accepts is cut to its newest entries.
    """
    entries = []
    for row in rows[-MAX_HISTORY:].tolist():
        name = log.event_types[int(log.events[row])]
        event = name if name in EVENT_TYPES else None
        entry: dict[str, Any] = {"item_id": str(log.item_ids[log.items[row]]), "timestamp": int(log.timestamps[row])}
        if event is not None:
            entry["event"] = event
        weight = float(log.weights[row])
        if weight != event_strength(event):
            entry["value"] = weight
        entries.append(entry)
    return {"recent_items": entries, "k": k}
