"""The experiments page (pages/5_Experiments.py): how to start one, a running one's split, metrics and CTR per
look, and one the decision job has not looked at yet. The experiments are written to the served model store."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import streamlit as st

from pipeline.experiment import control
from reccore.eventlog import EVENTS_DIR, ndjson
from reccore.experiment import EXPERIMENT_KEY, Experiment, read_experiment
from reccore.impressions import IMPRESSIONS_DIR, impression
from reccore.layout import LATEST_KEY
from reccore.storage import ArtifactStore, open_store
from tests.conftest import PublishedModel
from tests.frontend.conftest import assert_legend_clear_of_the_toolbar, open_page, texts

# (impressions, clicked, converted) per variant in each of two batches, one look after each; every arm stays
# below the test's 200 impressions, so both looks "continue" and LATEST is never moved by a promotion.
BATCHES = [{"champion": (40, 10, 3), "challenger": (30, 4, 1)}, {"champion": (20, 8, 2), "challenger": (30, 3, 0)}]


def _log_batch(
    store: ArtifactStore, experiment: Experiment, batch: dict[str, tuple[int, int, int]], tag: str
) -> list[str]:
    """Impressions of ``experiment`` and the events that name them, as the service and the event log write them."""
    impressions, events = [], []
    for variant, (shown, clicked, converted) in batch.items():
        version = experiment.champion if variant == "champion" else experiment.challenger
        for n in range(shown):
            rid = f"{tag}-{variant}-{n}"
            impressions.append(impression(rid, f"u{n}", None, ["i1"], "personalized", version, variant, experiment.id))
            if n < clicked:
                event = "purchase" if n < converted else "view"
                events.append({"user_id": f"u{n}", "item_id": "i1", "event": event, "recommendation_id": rid})
    keys = [f"{IMPRESSIONS_DIR}/2000/01/01/00/{tag}.ndjson", f"{EVENTS_DIR}/2000/01/01/00/{tag}.ndjson"]
    store.put(keys[0], ndjson(impressions))
    store.put(keys[1], ndjson(events))
    return keys


@contextmanager
def served_experiment(
    published_model: PublishedModel, publish_version: Callable[..., str], batches: list[dict[str, Any]]
) -> Iterator[Experiment]:
    """An experiment on the served model store, one look per batch by the decision job; removed afterwards."""
    store = open_store(published_model.uri)
    challenger = publish_version(store, published_model)
    # publish moved LATEST to the copy: put it back at once, so the API keeps serving the model the others expect.
    store.put(LATEST_KEY, published_model.version.encode())
    written: list[str] = []
    try:
        experiment = control.start(store, challenger, 0.5)
        for index, batch in enumerate(batches):
            written += _log_batch(store, experiment, batch, f"dashboard-test-{os.urandom(3).hex()}-{index}")
            assert control.evaluate(store)["decision"] == "continue"
        st.cache_data.clear()  # the dashboard caches API answers for 30 s; an earlier page saw no experiment
        found = read_experiment(store)
        assert found is not None
        yield found
    finally:
        store.delete([EXPERIMENT_KEY, *written])
        store.put(LATEST_KEY, published_model.version.encode())
        st.cache_data.clear()


@pytest.fixture
def experiment_with_looks(
    api_url: str, published_model: PublishedModel, publish_version: Callable[..., str]
) -> Iterator[Experiment]:
    with served_experiment(published_model, publish_version, BATCHES) as experiment:
        yield experiment


def test_without_an_experiment_the_page_explains_how_to_start_one(api_url: str) -> None:
    st.cache_data.clear()
    at = open_page("pages/5_Experiments.py", api_url)
    assert not at.exception and not at.error
    info = texts(at.info)
    assert "No experiment has been started" in info
    assert "-m pipeline experiment start --model URI --challenger VERSION --share 0.5" in info
    assert "-m pipeline simulate --api URL --users N" in info
    assert "-m pipeline experiment evaluate --model URI" in info
    assert not at.get("plotly_chart")


def test_a_running_experiment_shows_its_split_metrics_and_ctr_per_look(
    api_url: str, experiment_with_looks: Experiment
) -> None:
    experiment = experiment_with_looks
    at = open_page("pages/5_Experiments.py", api_url)
    assert not at.exception and not at.error

    assert experiment.id in texts(at.subheader)
    markdown = texts(at.markdown)
    assert "Running" in markdown
    assert experiment.champion in markdown and experiment.challenger in markdown
    assert {metric.label: metric.value for metric in at.main.metric}["Challenger share"] == "50%"

    table = next(frame.value for frame in at.dataframe if "variant" in frame.value.columns)
    rows = {row["variant"]: row for row in table.to_dict("records")}
    for variant in ("champion", "challenger"):
        shown, clicked, converted = (sum(batch[variant][i] for batch in BATCHES) for i in range(3))
        row = rows[variant]
        assert (row["impressions"], row["clicked"], row["converted"]) == (shown, clicked, converted)
        assert row["CTR"] == round(clicked / shown, 4)
    assert "Decision: `continue`" in texts(at.info)

    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = {trace["name"]: trace for trace in figure["data"] if trace.get("showlegend", True)}
    looks = experiment.looks
    assert len(looks) == 2
    for variant, version in (("champion", experiment.champion), ("challenger", experiment.challenger)):
        line = traces[f"{variant} ({version})"]
        assert line["y"] == [look["variants"][variant]["ctr"] for look in looks]
        band = traces[f"{variant} interval"]
        assert band["y"] == [look["variants"][variant]["ctr_ci"][0] for look in looks]
    assert_legend_clear_of_the_toolbar(figure, json.loads(at.get("plotly_chart")[0].proto.config))


def test_an_experiment_the_decision_job_has_not_looked_at_says_so(
    api_url: str, published_model: PublishedModel, publish_version: Callable[..., str]
) -> None:
    with served_experiment(published_model, publish_version, batches=[]) as experiment:
        at = open_page("pages/5_Experiments.py", api_url)
    assert not at.exception and not at.error
    assert experiment.id in texts(at.subheader)
    assert "The decision job has not run yet" in texts(at.info)
    assert not at.get("plotly_chart") and not at.dataframe
