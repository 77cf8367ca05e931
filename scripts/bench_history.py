"""Long histories through ``POST /recommend``: latency and body size by the length of ``recent_items``.

For 200, 1,000 and 5,000 (``MAX_HISTORY``) interactions (distinct items of the 10k-item default model, sent as
objects ``{"item_id", "event", "timestamp"}`` and as bare ids), it prints the body size and the p50/p99
of the in-process handler (event → Mangum → FastAPI → response, as under Lambda) and of the core alone
(``reccore.recommend`` with the same interactions: fold-in of the newest ``MAX_FOLD_IN``, every item
excluded). The difference is the cost of the wire: JSON, validation and id lookup.

    .venv/bin/python scripts/bench_history.py          (make bench runs it; about a minute)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZES = (200, 1_000, 5_000)
EVENTS = ("view", "click", "purchase")
T0 = 1_700_000_000


def timed(call: Callable[[], object], repeats: int) -> list[float]:
    for _ in range(5):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50, p99 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 for q in (0.5, 0.99))
    return f"p50 {p50:7.3f} ms  p99 {p99:7.3f} ms"


def main() -> None:
    with tempfile.TemporaryDirectory() as models:
        subprocess.run([sys.executable, "-m", "pipeline", "run", "--output", models, "--json", "--no-tune"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        os.environ.update({"REC_MODEL_URI": models, "REC_LOG_LEVEL": "WARNING", "REC_CACHE_DIR": models})
        sys.path.insert(0, str(ROOT / "functions" / "recommend"))
        from app.handler import handler
        from app.registry import registry
        from reccore.recommend import MAX_FOLD_IN, Interactions, recommend
        from reccore.settings import get_service_settings

        event = json.loads((ROOT / "events" / "recommend_cold_user.json").read_text())
        assert handler(event, None)["statusCode"] == 200  # type: ignore[arg-type]  # loads the model
        model = registry.model
        assert model is not None
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"model: {model.n_items:,} items, {model.n_users:,} users; MAX_FOLD_IN {MAX_FOLD_IN:,}; "
              f"REC_MAX_BODY_BYTES {get_service_settings().max_body_bytes:,}")  # fmt: skip
        rng = np.random.default_rng(0)
        for size in SIZES:
            items = rng.choice(model.n_items, size=size, replace=False)
            events = rng.choice(len(EVENTS), size=size)
            stamps = T0 + np.sort(rng.choice(10**7, size=size, replace=False))
            objects = [
                {"item_id": model.item_ids[i], "event": EVENTS[e], "timestamp": int(t)}
                for i, e, t in zip(items.tolist(), events.tolist(), stamps.tolist(), strict=True)
            ]
            repeats = max(20, 20_000 // size)
            for form, recent in (("objects", objects), ("bare ids", [o["item_id"] for o in objects])):
                body = json.dumps({"recent_items": recent, "k": 10})
                request = {**event, "body": body, "headers": {**event["headers"], "content-length": str(len(body))}}
                response = handler(request, None)  # type: ignore[arg-type]
                assert response["statusCode"] == 200, response["body"][:300]
                truncated = json.loads(response["body"])["truncated_items"]
                samples = timed(lambda r=request: handler(r, None), repeats)  # type: ignore[misc,arg-type]
                print(f"  {size:>6,} {form:<8} body {len(body) / 1024:7.1f} KiB  handler {summary(samples)}"
                      f"  (truncated_items {truncated})")  # fmt: skip
            strengths = np.array([{"view": 1.0, "click": 2.0, "purchase": 5.0}[EVENTS[e]] for e in events])
            interactions = Interactions.of(items, strengths, stamps)

            def core_call(x: Interactions = interactions) -> object:
                return recommend(model, 10, interactions=x)

            core = timed(core_call, repeats)
            print(f"  {size:>6,} core     {'':>18}  recommend {summary(core)}")
        get_service_settings.cache_clear()


if __name__ == "__main__":
    main()
