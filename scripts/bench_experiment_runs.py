"""What one run of ``bench_experiment.py`` needs: the two models, the API in process, an experiment to a decision.

``experiment`` starts an experiment, sends batches of simulated users and looks after each batch until the decision
job decides; ``clear_logs`` keeps the looks' cost bounded between A/A runs; ``impression_overhead`` times the
impression log in process. The module docstring of ``bench_experiment.py`` describes the whole benchmark.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-experiment"
URI = f"s3://{BUCKET}/experiment"
INTERACTIONS, LOG_SEED = 100_000, 42
SHARE, BATCH = 0.5, 250
OVERHEAD_CALLS = 20_000


def impression_overhead(calls: int = OVERHEAD_CALLS) -> dict[str, Any]:
    """p50/p99 of building one impression record and queueing it (the request's share; the writer thread drains)."""
    from reccore.impressions import ImpressionLog, impression

    log = ImpressionLog(lambda batch: None)
    items = [f"i{k:06d}" for k in range(10)]
    samples = []
    for n in range(calls + 1000):  # the first 1,000 warm up (thread start, allocator)
        recommendation_id = uuid.uuid4().hex
        start = time.perf_counter_ns()
        log.log(impression(recommendation_id, "u0000001", None, items, "personalized", "20260101T000000.000000Z",
                           "champion", "exp-20260101T000000-abcdef"))  # fmt: skip
        elapsed = time.perf_counter_ns() - start
        if n >= 1000:
            samples.append(elapsed)
    log.flush(30)
    samples.sort()
    return {
        "calls": calls,
        "p50_ms": round(samples[len(samples) // 2] / 1e6, 4),
        "p99_ms": round(samples[int(0.99 * len(samples))] / 1e6, 4),
        "dropped": log.dropped,
    }


def publish_models() -> tuple[str, str, float]:
    """The good (default, tuned) and the bad (2 factors, untuned) model under ``URI``; their versions, seconds."""
    from pipeline.job import run
    from reccore.settings import PipelineSettings

    start = time.perf_counter()
    good = run(PipelineSettings(output=URI, interactions=INTERACTIONS, seed=LOG_SEED, force=True)).version
    bad = run(PipelineSettings(output=URI, interactions=INTERACTIONS, seed=LOG_SEED, force=True, factors=2,
                               tune=False)).version  # fmt: skip
    return good, bad, time.perf_counter() - start


class Service:
    """The API under uvicorn in a thread of this process, serving ``URI`` and checking LATEST on every request."""

    def __init__(self, cache_dir: str) -> None:
        sys.path.insert(0, str(ROOT / "functions" / "recommend"))
        import uvicorn

        from app.main import app
        from app.registry import registry
        from app.state import reset_state
        from reccore.settings import get_service_settings

        os.environ.update({"REC_MODEL_URI": URI, "REC_REFRESH_SECONDS": "0", "REC_CACHE_DIR": cache_dir})
        get_service_settings.cache_clear()
        registry.reset()
        reset_state()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()

    def serves(self, champion: str, experiment_id: str, timeout: float = 120.0) -> None:
        """Wait until the service answers with ``champion`` and holds the experiment ``experiment_id``.

        ``GET /health`` runs the LATEST and experiment check like any request but logs no impression."""
        from app.registry import registry

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=30):
                    pass
            except OSError:
                time.sleep(0.2)
                continue
            trial, model = registry.trial(), registry.model
            if trial is not None and trial[0].id == experiment_id and model is not None and model.version == champion:
                return
            time.sleep(0.05)
        raise SystemExit(f"the service did not pick up experiment {experiment_id} (champion {champion}) in {timeout} s")

    def flush(self) -> None:
        from app.state import get_impression_log

        if not get_impression_log().flush(60):
            raise SystemExit("impressions still queued after 60 s")

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def separate(variants: dict[str, Any]) -> bool:
    """Whether the two arms' always-valid CTR intervals do not overlap."""
    (a_lo, a_hi), (b_lo, b_hi) = variants["champion"]["ctr_ci"], variants["challenger"]["ctr_ci"]
    return bool(a_hi < b_lo or b_hi < a_lo)


def experiment(store: Any, service: Service, challenger: str, champion: str, max_users: int,
               seed_base: int = 0) -> dict[str, Any]:  # fmt: skip
    """Start an experiment, then batches of simulated users with a look after each, until a decision or
    ``max_users``; a run still undecided is stopped. Returns the last report's figures."""
    from pipeline.experiment import control
    from pipeline.experiment.simulate import simulate
    from reccore.experiment import read_experiment

    started = control.start(store, challenger, SHARE)
    service.serves(champion, started.id)
    users, looks, simulated_s = 0, [], 0.0
    errors: Counter[str] = Counter()
    report: dict[str, Any] = {}
    while users < max_users:
        batch = users // BATCH + 1
        result = simulate(service.url, BATCH, seed=seed_base + batch, interactions=INTERACTIONS, log_seed=LOG_SEED)
        simulated_s += result["seconds"]
        errors.update(result["errors"])
        users += BATCH
        service.flush()
        start = time.perf_counter()
        report = control.evaluate(store)
        looks.append(time.perf_counter() - start)
        if report["decision"] != "continue":
            break
    current = read_experiment(store)
    if current is not None and current.running:
        control.stop(store)
    variants = {
        name: {
            "impressions": v["impressions"],
            "clicks": v["clicks"],
            "ctr": round(v["ctr"], 4),
            "ctr_ci": [round(x, 4) for x in v["ctr_ci"]],
        }
        for name, v in report["variants"].items()
    }
    return {
        "decision": report["decision"],
        "users": users,
        "looks": len(looks),
        "variants": variants,
        "intervals_separate": separate(report["variants"]),
        "reason": report["reason"],
        "events_unmatched": report["events_unmatched"],
        "errors": dict(errors),
        "users_per_s": round(users / simulated_s, 1) if simulated_s else None,
        "look_s_median": round(statistics.median(looks), 3),
        "look_s_max": round(max(looks), 3),
    }


def log_keys(store: Any) -> list[str]:
    """Every event and impression object under the prefix."""
    from reccore.eventlog import EVENTS_DIR
    from reccore.impressions import IMPRESSIONS_DIR

    return [*store.list_keys(EVENTS_DIR + "/"), *store.list_keys(IMPRESSIONS_DIR + "/")]


def clear_logs(store: Any) -> int:
    """Delete every event and impression object (between A/A runs; see the module docstring); returns how many."""
    keys = log_keys(store)
    store.delete(keys)
    return len(keys)
