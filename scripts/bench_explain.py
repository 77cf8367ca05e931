"""The cost of ``explain: true`` on ``POST /recommend`` (issue 23): in process, through the app, k=10 and a
200-item history, against the same request without it; and how often an item's top reason shares its category.

    .venv/bin/python scripts/bench_explain.py      (make bench runs it; prints its figures)

The category figure is a sanity check, not a gate: with the synthetic shop's category tastes, a reason should
share the recommended item's category far more often than a random item of the same history does.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions" / "recommend"))
REQUESTS, HISTORY, K = 2000, 200, 10


def main() -> None:
    import os

    from fastapi.testclient import TestClient

    from pipeline.job import run
    from reccore.settings import PipelineSettings, get_service_settings

    with tempfile.TemporaryDirectory() as directory:
        run(PipelineSettings(output=directory, interactions=100_000, force=True, tune=False))
        os.environ.update({"REC_MODEL_URI": directory, "REC_CACHE_DIR": str(Path(directory) / "cache")})
        get_service_settings.cache_clear()
        from app.main import app
        from app.registry import registry

        with TestClient(app) as client:
            client.get("/health")
            model = registry.model
            assert model is not None
            rng = np.random.default_rng(0)
            timings: dict[bool, list[float]] = {False: [], True: []}
            same = random_same = counted = 0
            for _ in range(REQUESTS):
                items = rng.choice(model.n_items, size=HISTORY, replace=False)
                body = {"recent_items": [model.item_ids[i] for i in items.tolist()], "k": K}
                for explain in (False, True):
                    start = time.perf_counter()
                    answer = client.post("/recommend", json={**body, "explain": explain}).json()
                    timings[explain].append(time.perf_counter() - start)
                for item in answer["items"]:
                    if isinstance(item["because"], list) and item["because"]:
                        counted += 1
                        same += item["because"][0]["item_id"] in _same_category(model, item, items)
                        random_same += model.categories[int(rng.choice(items))] == item["category"]
            plain, explained = (statistics.median(timings[flag]) * 1e3 for flag in (False, True))
            print(f"POST /recommend in process, k={K}, {HISTORY} history items, {REQUESTS} requests each: p50 "
                  f"{plain:.3f} ms plain, {explained:.3f} ms with explain (+{explained - plain:.3f} ms)")  # fmt: skip
            print(f"top reason in the recommended item's category: {same / counted:.1%} of {counted:,} items; "
                  f"a random item of the same history: {random_same / counted:.1%}")  # fmt: skip


def _same_category(model: Any, item: dict[str, Any], history: np.ndarray) -> set[str]:
    return {model.item_ids[i] for i in history.tolist() if model.categories[i] == item["category"]}


if __name__ == "__main__":
    main()
