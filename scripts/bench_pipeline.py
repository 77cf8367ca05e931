"""Pipeline benchmark: wall time and peak RSS of whole runs, each in a fresh process.

Targets: the default command at 100k interactions (tuning included) in <= 10 s; untuned (``--no-tune``) 100k < 3 s
and < 300 MB; 10M < 90 s and < 3 GB (above 1M interactions tuning is off by default).
Usage: python scripts/bench_pipeline.py [N ...]   (default: 100000 10000000)
Writes its figures to the ``pipeline`` section of docs/bench.json (see bench_record.py).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench_record import LoadWatch, import_seconds, record

TARGETS = {(100_000, True): "<= 10 s", (100_000, False): "< 3 s / < 300 MB", (10_000_000, False): "< 90 s / < 3 GB"}
TUNE_MAX = 1_000_000  # REC_TUNE_MAX_INTERACTIONS' default: the default command tunes up to this size


def run_once(interactions: int, tuned: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as output:
        start = time.perf_counter()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                "run",
                "--interactions",
                str(interactions),
                "--output",
                output,
                "--json",
                "--tune" if tuned else "--no-tune",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        out, err = process.communicate()
        if status != 0:
            raise SystemExit(f"pipeline failed for {interactions}: {err.decode()[-2000:]}")
        result = json.loads(out)
    return {"interactions": interactions, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, **result}


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100_000, 10_000_000]
    load = LoadWatch()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    runs = []
    for size, tuned in [(size, tuned) for size in sizes for tuned in (True, False) if not tuned or size <= TUNE_MAX]:
        result = run_once(size, tuned)
        timings = result["timings"]
        metrics = result["metrics"]
        data = result["data"]
        print(
            f"{size:>11,} interactions, {'default (tuned)' if tuned else '--no-tune':<15}: "
            f"wall {result['wall_s']:6.2f} s, peak RSS {result['peak_rss_mb']:7.0f} MB | "
            + ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
        )
        print(
            f"{'':>26}ndcg@10 model {metrics['model']['ndcg@10']:.4f} vs popularity "
            f"{metrics['popularity']['ndcg@10']:.4f}"
        )
        runs.append({
            "interactions": size, "tuned": tuned, "tuning": result["tuning"], "users": data["n_users"],
            "items": data["n_items"], "target": TARGETS.get((size, tuned)),
            "wall_s": round(result["wall_s"], 2), "peak_rss_mb": round(result["peak_rss_mb"]),
            "stages_s": round(sum(timings.values()), 2), "timings_s": timings,
            "ndcg_at_10": {name: values["ndcg@10"] for name, values in metrics.items()},
        })  # fmt: skip
    imports = {module: import_seconds(module) for module in ("pipeline.cli", "sklearn.utils.extmath")}
    print("import (fresh process, median of 3): " + ", ".join(f"{m} {s:.2f} s" for m, s in imports.items()))
    record("pipeline", {"runs": runs, "import_s": imports}, load)


if __name__ == "__main__":
    main()
