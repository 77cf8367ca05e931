"""The online experiment end to end on moto: an API over HTTP, simulated users, the decision job.

A deliberately bad challenger (2 factors) against the champion at 50% is rolled back; an A/A experiment
(the champion against itself) is not decided. The join is checked to drop no event that names an answer.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeline.experiment import control
from pipeline.experiment.attribution import attribute, read_records
from pipeline.experiment.simulate import simulate
from pipeline.job import run
from reccore.eventlog import EVENTS_DIR
from reccore.experiment import read_experiment
from reccore.impressions import IMPRESSIONS_DIR
from reccore.settings import PipelineSettings
from reccore.storage import open_store
from tests.conftest import SEED, SYNTHETIC_INTERACTIONS
from tests.integration.stack import http

pytestmark = pytest.mark.slow
USERS = 1500


@pytest.fixture()
def served(fresh_prefix: str, configure_service: Callable[..., None]) -> Iterator[str]:
    """uvicorn (in a thread) serving ``fresh_prefix``, checking LATEST and the experiment on every request."""
    import uvicorn

    from app.main import app
    from app.state import get_impression_log

    configure_service(fresh_prefix, refresh_seconds=0)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        assert get_impression_log().flush(30)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _publish(prefix: str, **settings: Any) -> str:
    config = PipelineSettings(output=prefix, interactions=SYNTHETIC_INTERACTIONS, seed=SEED, tune=False, force=True,
                              **settings)  # fmt: skip
    return run(config).version


def _simulate(api: str, users: int, seed: int) -> dict[str, Any]:
    """Simulated users, once the service holds the experiment (the first request of a fresh process loads the
    champion; the experiment is read by the next check): every simulated answer then belongs to it."""
    from app.registry import registry

    for _ in range(50):
        http("POST", api + "/recommend", {"k": 1})
        if registry.trial() is not None:
            return simulate(api, users, seed, interactions=SYNTHETIC_INTERACTIONS, log_seed=SEED)
    raise AssertionError("the service did not pick up the experiment")


def test_a_bad_challenger_is_rolled_back_and_the_join_drops_nothing(
    fresh_prefix: str, published_model: Any, publish_version: Callable[..., str], served: str
) -> None:
    store = open_store(fresh_prefix)
    bad = _publish(fresh_prefix, factors=2)
    publish_version(store, published_model)  # the champion: LATEST
    experiment = control.start(store, bad, 0.5)
    result = _simulate(served, USERS, seed=1)
    assert not result["errors"] and set(result["variants"]) == {"champion", "challenger"}, result
    from app.state import get_impression_log

    assert get_impression_log().flush(30)
    report = control.evaluate(store)
    assert report["decision"] == "rollback", report
    champion, challenger = report["variants"]["champion"], report["variants"]["challenger"]
    assert challenger["ctr_ci"][1] < champion["ctr_ci"][0]  # the intervals separate
    ended = read_experiment(store)
    assert ended is not None and ended.status == "rollback" and ended.share == 0.0 and ended.decisions

    # The join: every logged event that names an answer is attributed to it (none lost, none unmatched).
    named = [r for r in read_records(store, EVENTS_DIR) if r.get("recommendation_id")]
    joined = attribute(store, experiment.id)
    assert joined.events_attributed == len(named) and joined.events_unmatched == 0
    # Every simulated answer is counted; so is the anonymous warm-up answer that met the experiment (champion).
    warm = sum(1 for r in read_records(store, IMPRESSIONS_DIR) if r["experiment"] == experiment.id and not r["user_id"])
    for name, extra in (("champion", warm), ("challenger", 0)):
        assert report["variants"][name]["impressions"] == result["variants"][name]["impressions"] + extra
        assert report["variants"][name]["clicks"] == result["variants"][name]["clicked"]


def test_an_aa_experiment_is_not_decided(
    fresh_prefix: str, published_model: Any, publish_version: Callable[..., str], served: str
) -> None:
    store = open_store(fresh_prefix)
    version = publish_version(store, published_model)
    control.start(store, version, 0.5)  # the same version on both sides
    result = _simulate(served, USERS, seed=2)
    assert not result["errors"], result
    from app.state import get_impression_log

    assert get_impression_log().flush(30)
    report = control.evaluate(store)
    assert report["decision"] == "continue", report
