"""Cold start and API memory against the number of users, with and without per-user arrays in the artifact.

For each user count (10k and 1M by default) it builds a synthetic log over the default 10,000-item
catalogue (every user has 1 + a Pareto-distributed number of interactions, ~5 on average, so 1M users is
~5M interactions), trains the model once, packages it twice (all files; item-side only, as published when
a user-state table holds the users) and publishes both to a local moto S3. Then, for each version, fresh
processes run the Lambda handler from import to the first ``/recommend`` answer and report the wall time
and the process's resident memory (VmRSS after the answer, VmHWM the peak). Python's bytecode cache is on
(warmed by a first, unreported run), as in an image whose packages were compiled at build time.

    nice -n 10 .venv/bin/python scripts/bench_users.py [--users 10000,1000000] [--runs 3] [--record]

With ``--record`` the figures go to ``docs/bench.json`` (section ``users``), from which
``scripts/bench_report.py --write`` renders docs/performance.md's table (``make bench-users`` does both).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_record import LoadWatch, bytecode_cache, environment, record
from local_stack import local_aws

from pipeline.data import InteractionLog

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-users"

COLD_START = """
import json, sys, time
start = time.perf_counter()
sys.path.insert(0, "functions/recommend")
from app.handler import handler
imported = time.perf_counter()
event = json.load(open("events/recommend_known_user.json"))
event["body"] = json.dumps({"user_id": sys.argv[1], "k": 10})
response = handler(event, None)
done = time.perf_counter()
assert response["statusCode"] == 200, response
status = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith(("VmRSS", "VmHWM")))
mb = {k: int(v.split()[0]) / 1024 for k, v in status.items()}
print(json.dumps({"import": imported - start, "total": done - start, "rss": mb["VmRSS"], "hwm": mb["VmHWM"],
                  "strategy": json.loads(response["body"])["strategy"]}))
"""


def synthetic_users(n_users: int, seed: int) -> InteractionLog:
    """A log of ``n_users`` users over the default synthetic catalogue, items drawn by their popularity."""
    from pipeline.sources.synthetic import generate

    shop = generate(100_000, seed)
    rng = np.random.default_rng(seed)
    per_user = 1 + np.minimum(rng.pareto(1.5, n_users) * 2, 200).astype(np.int64)
    users = np.repeat(np.arange(n_users, dtype=np.int32), per_user)
    popularity = np.bincount(shop.items, minlength=shop.n_items).astype(np.float64) + 0.1
    items = rng.choice(shop.n_items, size=len(users), p=popularity / popularity.sum()).astype(np.int32)
    events = rng.choice(3, size=len(users), p=[0.75, 0.2, 0.05]).astype(np.int8)
    return InteractionLog(
        user_ids=np.array([f"u{u:07d}" for u in range(n_users)]),
        item_ids=shop.item_ids,
        users=users,
        items=items,
        weights=np.array([1, 2, 5], dtype=np.float32)[events],
        timestamps=rng.integers(1_700_000_000, 1_719_705_600, size=len(users)),
        events=events,
        event_types=["view", "click", "purchase"],
        titles=shop.titles,
        categories=shop.categories,
        prices=shop.prices,
        source=f"bench: {n_users} users",
    )


def publish_both(n_users: int, seed: int) -> tuple[int, dict[str, tuple[str, int]]]:
    """Train once, publish with and without user arrays; returns the interactions and mode -> (uri, bytes)."""
    from pipeline.package import package
    from pipeline.train import train
    from reccore.storage import open_store
    from reccore.versions import publish

    start = time.perf_counter()
    log = synthetic_users(n_users, seed)
    trained = train(log, 50, "log", seed, 0.5)
    print(f"  {n_users:,} users, {log.n_interactions:,} interactions: trained in {time.perf_counter() - start:.0f} s")
    published = {}
    for mode, user_arrays in (("with user arrays", True), ("item-side only", False)):
        uri = f"s3://{BUCKET}/u{n_users}-{'full' if user_arrays else 'items'}"
        manifest, files = package(log, trained, "flat", {"seed": seed}, seed, user_arrays)
        publish(open_store(uri), manifest, files)
        published[mode] = (uri, sum(len(data) for data in files.values()))
        del files
    return log.n_interactions, published


def cold_starts(env: dict[str, str], uri: str, user: str, runs: int) -> dict[str, float | str]:
    results: list[dict[str, float | str]] = []
    with tempfile.TemporaryDirectory() as pycache:
        run_env = {**os.environ, **env, "REC_MODEL_URI": uri, "PYTHONPYCACHEPREFIX": pycache}
        run_env.pop("PYTHONDONTWRITEBYTECODE", None)
        for attempt in range(runs + 1):
            with tempfile.TemporaryDirectory() as cache:
                out = subprocess.run([sys.executable, "-c", COLD_START, user], cwd=ROOT, check=True, text=True,
                                     capture_output=True, env={**run_env, "REC_CACHE_DIR": cache})  # fmt: skip
            if attempt:  # the first run fills the bytecode cache
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    def median(key: str) -> float:
        return round(statistics.median(float(r[key]) for r in results), 3)

    return {
        "total_s": median("total"),
        "import_s": median("import"),
        "min_s": round(min(float(r["total"]) for r in results), 3),
        "max_s": round(max(float(r["total"]) for r in results), 3),
        "rss_mb": round(median("rss")),
        "peak_rss_mb": round(median("hwm")),
        "runs": len(results),
        "strategy": str(results[0]["strategy"]),
    }


def main() -> None:
    import boto3

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="10000,1000000", help="comma-separated user counts")
    parser.add_argument("--runs", type=int, default=3, help="cold starts per version (after one warm-up)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--record", action="store_true", help="write the figures to docs/bench.json (section users)")
    args = parser.parse_args()
    counts = [int(part) for part in args.users.split(",")]

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    load = LoadWatch()
    rows: list[dict[str, object]] = []
    with local_aws() as env:
        os.environ.update(env)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        for n_users in counts:
            interactions, published = publish_both(n_users, args.seed)
            for mode, (uri, size) in published.items():
                result = cold_starts(env, uri, "u0000001", args.runs)
                rows.append({"users": n_users, "interactions": interactions, "user_arrays": mode == "with user arrays",
                             "artifact_mb": round(size / 1e6, 1), **result})  # fmt: skip
                print(
                    f"  {n_users:>9,} users  {mode:<17} artifact {size / 1e6:7.1f} MB  cold start "
                    f"{result['total_s']:.2f} s (import {result['import_s']:.2f} s)  RSS {result['rss_mb']} MB "
                    f"(peak {result['peak_rss_mb']} MB)  [{result['strategy']}]",
                    flush=True,
                )
    cache = {**bytecode_cache({**os.environ, "PYTHONDONTWRITEBYTECODE": ""}), "PYTHONPYCACHEPREFIX": "per run"}
    if args.record:
        record("users", {"cold_start_bytecode_cache": cache, "rows": rows}, load)
    else:
        print(json.dumps({"environment": environment(), "load": load.result(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
