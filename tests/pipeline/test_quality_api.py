"""The cold-start study through the front door: the service in a process of its own, asked over HTTP.

Held-out users, client bodies, no history returned; the server always stopped; the pipeline never imports ``app``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pipeline.client
import pipeline.quality.api
from app.schemas.recommend import RecommendRequest
from pipeline.data import InteractionLog
from pipeline.quality.api import history_body, serving
from pipeline.quality.coldstart import SvdConfig, cold_user_splits, served_files
from pipeline.sources.synthetic import generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synthetic() -> InteractionLog:
    return generate(3_000, seed=4)


def test_cold_user_splits_hold_the_same_users_out_of_training_on_both_protocols(synthetic: InteractionLog) -> None:
    splits = cold_user_splits(synthetic, share=0.1, seed=3)
    assert set(splits) == {"time", "random"}
    held = [set(np.unique(split.history.users).tolist()) for split in splits.values()]
    assert held[0] == held[1] and len(held[0]) == round(0.1 * synthetic.n_users)
    for split in splits.values():
        assert not held[0] & set(split.train.users.tolist())
        assert split.in_model.n_interactions == split.train.n_interactions + split.history.n_interactions
        for user in split.users.tolist():
            mine = split.history.items[split.history.users == user]
            assert split.relevant[user] and not split.relevant[user] & set(mine.tolist())
    time_split = splits["time"]
    for user in time_split.users.tolist():
        history = time_split.history.timestamps[time_split.history.users == user]
        held_out = synthetic.timestamps[synthetic.users == user]
        assert history.max() <= np.sort(held_out)[len(history)]  # the test share is the user's newest


def test_a_history_body_parses_to_the_strengths_training_used(synthetic: InteractionLog) -> None:
    rows = np.flatnonzero(synthetic.users == synthetic.users[0])
    request = RecommendRequest.model_validate_json(json.dumps(history_body(synthetic, rows, 10)))
    ids, strengths, timestamps = request.history()
    assert ids == [str(synthetic.item_ids[i]) for i in synthetic.items[rows]]
    np.testing.assert_allclose(strengths, synthetic.weights[rows])
    assert timestamps == synthetic.timestamps[rows].astype(float).tolist()
    rated = synthetic.subset(np.ones(synthetic.n_interactions, dtype=bool))
    rated.event_types, rated.events = ["rating"], np.zeros(rated.n_interactions, dtype=np.int8)
    rated.weights = np.full(rated.n_interactions, 4.0, dtype=np.float32)
    body = history_body(rated, rows[:2], 10)
    assert body["recent_items"][0]["event"] == "rating" and body["recent_items"][0]["value"] == 4.0


def test_held_out_users_never_get_their_own_history_back(synthetic: InteractionLog) -> None:
    split = cold_user_splits(synthetic, share=0.1, seed=5)["random"]
    returned_with_seen = 0
    with serving(*served_files(split.train, SvdConfig(8, "log"))) as service:
        for user in split.users.tolist():
            rows = np.flatnonzero(split.history.users == user)
            own = {str(split.history.item_ids[i]) for i in split.history.items[rows]}
            body = history_body(split.history, rows, 100)
            answer = service.recommend(body)
            assert answer["strategy"] == "fold_in"
            assert not own & {item["item_id"] for item in answer["items"]}
            kept = service.recommend({**body, "exclude_seen": False})
            returned_with_seen += len(own & {item["item_id"] for item in kept["items"]})
    assert returned_with_seen > 0, "premise: without exclusion the model does recommend users their own history"


def test_the_study_asks_a_uvicorn_process_over_http_and_stops_it(synthetic: InteractionLog) -> None:
    with serving(*served_files(synthetic, SvdConfig(8, "log"))) as service:
        pid, port = service.process.pid, int(service.url.rsplit(":", 1)[1])
        assert pid != os.getpid()
        assert b"app.main:app" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        with urllib.request.urlopen(f"{service.url}/health", timeout=30) as response:  # another client, same server
            assert json.load(response)["model_version"] == service.model.version
        answer = service.recommend({"user_id": str(synthetic.user_ids[0]), "k": 5})
        assert answer["strategy"] == "personalized" and answer["model_version"] == service.model.version
        with pytest.raises(RuntimeError, match="answered 422"):  # the service's own validation, not a stand-in's
            service.recommend({"user_id": "u", "k": 0})
    assert service.process.returncode is not None
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the service still listens after the study"


def test_a_service_that_cannot_start_fails_at_once_and_leaves_no_process(
    synthetic: InteractionLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[subprocess.Popen[bytes]] = []
    popen = subprocess.Popen

    def recording(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(pipeline.client, "SERVICE_DIR", tmp_path)  # no app package: uvicorn cannot import it
    monkeypatch.setattr(pipeline.quality.api.subprocess, "Popen", recording)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with code"), serving(*served_files(synthetic, SvdConfig(4, "log"))):
        pass
    assert time.monotonic() - start < pipeline.quality.api.START_SECONDS / 2
    assert len(started) == 1 and started[0].returncode is not None


def test_a_server_that_ignores_sigterm_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.quality.api, "STOP_SECONDS", 0.5)
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    assert process.stdout is not None and process.stdout.readline()  # the handler is installed
    pipeline.quality.api._stop(process)
    assert process.returncode == -signal.SIGKILL


def test_no_pipeline_module_imports_the_service_app() -> None:
    """Every module of the pipeline, imported with the service's package importable: ``app`` stays unloaded."""
    code = (
        "import importlib, pkgutil, sys, pipeline\n"
        "names = [m.name for m in pkgutil.walk_packages(pipeline.__path__, 'pipeline.')]\n"
        "names.remove('pipeline.__main__')  # it runs the CLI\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "assert 'app' not in sys.modules, sorted(m for m in sys.modules if m == 'app' or m.startswith('app.'))\n"
        "print(len(names))\n"
    )
    path = [ROOT / "layers" / "reccore", ROOT, ROOT / "functions" / "recommend"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path))}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    files = [p for p in (ROOT / "pipeline").rglob("*.py") if p.name != "__main__.py" and "__pycache__" not in p.parts]
    assert int(out.stdout) == len(files) - 1  # every module and package but the top one (imported as the walk's root)
