"""The cold-start study through the service's own app: held-out users, client bodies, no history returned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.schemas import RecommendRequest
from pipeline.data import InteractionLog
from pipeline.quality.api import history_body, serving
from pipeline.quality.coldstart import SvdConfig, cold_user_splits, served_model
from pipeline.sources.synthetic import generate


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
    with serving(served_model(split.train, SvdConfig(8, "log"))) as service:
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


def test_the_pipeline_cli_does_not_need_the_service_app() -> None:
    root = Path(__file__).resolve().parents[2]
    code = "import sys, pipeline.cli, pipeline.quality.experiment; assert 'app' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "layers" / "reccore"), str(root)])}
    subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True)
