"""Serving at catalogue scale: synthetic d=50 catalogues of 10k, 100k and 1M items (issue 12).

For each size: the index ``--index auto`` picks (build + tuning time, its recall@10 and filtered recall
against exact search, one-query latency against exact search), bytes per item, then in a fresh process
with the artifacts in a local moto S3: cold start (import → first /recommend), RSS, in-process handler
/recommend p50/p99 with and without a heavy filter (half the categories excluded), and batch users/s.

    nice -n 10 .venv/bin/python scripts/bench_scale.py --sizes 10000,100000,1000000   (make bench-scale)
Figures go to the ``scale`` section of docs/bench.json (sizes measured earlier are kept).
Goal at 1M: recall@10 ≥ 0.95 at ≥ 10× exact search's QPS, in-process p50 < 2 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from bench_record import BENCH_FILE, LoadWatch, record
from local_stack import local_aws

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-scale"
DIMS, N_USERS, N_CATEGORIES, HISTORY = 50, 20_000, 20, 20
REQUESTS = 2000


def synthetic(n_items: int, seed: int = 7) -> dict[str, np.ndarray]:
    """Clustered item vectors with varied norms (like SVD factors), users near the clusters, random histories."""
    rng = np.random.default_rng(seed)
    n_clusters = 256
    centres = rng.standard_normal((n_clusters, DIMS)).astype(np.float32)
    clusters = rng.integers(0, n_clusters, size=n_items)
    items = centres[clusters] + 0.6 * rng.standard_normal((n_items, DIMS), dtype=np.float32)
    items *= rng.lognormal(0.0, 0.3, size=(n_items, 1)).astype(np.float32)
    users = centres[rng.integers(0, n_clusters, size=N_USERS)] + rng.standard_normal((N_USERS, DIMS), dtype=np.float32)
    return {
        "items": items.astype(np.float32),
        "users": users.astype(np.float32),
        "categories": rng.integers(0, N_CATEGORIES, size=n_items),
        "history": rng.integers(0, n_items, size=N_USERS * HISTORY).astype(np.int32),
        "popularity": rng.zipf(1.5, size=n_items).clip(max=10**6).astype(np.float32),
    }


def build_and_publish(n_items: int, uri: str) -> dict[str, object]:
    import faiss

    from pipeline.index import latency_us, sample_rows
    from pipeline.index_choice import choose_indexes
    from reccore.encoding import ItemTable, ModelContents, encode
    from reccore.layout import Files, Manifest
    from reccore.storage import open_store
    from reccore.versions import new_version, publish

    data = synthetic(n_items)
    categories = np.array([f"cat{c:02d}" for c in range(N_CATEGORIES)])[data["categories"]]
    start = time.perf_counter()
    chosen = choose_indexes(data["items"], data["users"], categories, "auto", 0.95, exact_below=50_000)
    build = time.perf_counter() - start
    exact = faiss.IndexFlatIP(DIMS)
    exact.add(data["items"])
    queries = sample_rows(data["users"], 200, 1)
    exact_us, chosen_us = latency_us(exact, queries), latency_us(chosen.index_ip, queries)
    contents = ModelContents(
        arrays={
            Files.USER_FACTORS: data["users"],
            Files.ITEM_FACTORS: data["items"],
            Files.SINGULAR_VALUES: np.ones(DIMS, dtype=np.float32),
            Files.ITEM_WEIGHTS: np.ones(n_items, dtype=np.float32),
            Files.POPULARITY: data["popularity"],
            Files.CONTENT_BASED: np.zeros(n_items, dtype=bool),
            Files.ITEM_MAP: data["items"][:, :2].copy(),
            Files.HISTORY_INDPTR: np.arange(0, N_USERS * HISTORY + 1, HISTORY, dtype=np.int64),
            Files.HISTORY_ITEMS: data["history"],
            Files.HISTORY_TIMES: np.full(len(data["history"]), 1_700_000_000, dtype=np.int64),
            Files.HISTORY_EVENTS: np.zeros(len(data["history"]), dtype=np.int8),
        },
        user_ids=[f"u{u:07d}" for u in range(N_USERS)],
        items=ItemTable(
            item_id=[f"i{i:07d}" for i in range(n_items)],
            title=[f"Item {i}" for i in range(n_items)],
            category=categories.tolist(),
            price=np.ones(n_items, dtype=np.float32),
        ),
        index_ip=chosen.index_ip,
        index_cos=chosen.index_cos,
    )
    manifest = Manifest(
        version=new_version(),
        created_at=datetime.now(UTC),
        params={"weighting": {"scheme": "none", "avg_row_length": 1.0}},
        index=chosen.info,
        event_types=["view"],
    )
    files = encode(contents)
    publish(open_store(uri), manifest, files)
    info = chosen.info
    return {
        "items": n_items,
        "index": info.type,
        "params": info.params,
        "build_s": round(build, 1),
        "recall": info.recall_at_10 if info.recall_at_10 is not None else 1.0,
        "filtered_recall": info.filtered_recall_at_10 if info.filtered_recall_at_10 is not None else 1.0,
        "exact_us": round(exact_us, 1),
        "index_us": round(chosen_us, 1),
        "speedup": round(exact_us / chosen_us, 1),
        "bytes_per_item": round(sum(len(b) for b in files.values()) / n_items, 1),
        "index_bytes_per_item": round((len(files[Files.INDEX_IP]) + len(files[Files.INDEX_COS])) / n_items, 1),
        "selection": info.selection,
    }


CHILD = """
import json, os, sys, time
start = time.perf_counter()
sys.path.insert(0, "functions/recommend")
from app.handler import handler
imported = time.perf_counter()
event = json.load(open("events/recommend_known_user.json"))
def call(payload):
    response = handler({**event, "body": json.dumps(payload)}, None)
    assert response["statusCode"] == 200, response
    return response
call({"user_id": "u0000001", "k": 10})
first = time.perf_counter()
def rss_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
out = {"import_s": imported - start, "cold_start_s": first - start, "rss_after_load_mb": rss_mb("VmRSS:")}
import numpy as np
rng = np.random.default_rng(0)
heavy = [f"cat{c:02d}" for c in range(0, 20, 2)]
for name, extra in (("plain", {}), ("heavy_filter", {"exclude_categories": heavy})):
    users = rng.integers(0, 20000, size=%(requests)d + 200)
    samples = []
    for i, user in enumerate(users):
        t = time.perf_counter()
        call({"user_id": f"u{user:07d}", "k": 10, **extra})
        if i >= 200:
            samples.append(time.perf_counter() - t)
    samples.sort()
    out[name + "_p50_ms"] = samples[len(samples) // 2] * 1e3
    out[name + "_p99_ms"] = samples[int(0.99 * len(samples))] * 1e3
from app.registry import registry
from reccore.batch import recommend_users
model = registry.model
rows = list(range(5000))
t = time.perf_counter()
list(recommend_users(model, rows, 10, threads=2))
out["batch_users_per_s"] = len(rows) / (time.perf_counter() - t)
out["rss_peak_mb"] = rss_mb("VmHWM:")  # the kernel's high-water mark of this process (ru_maxrss inherits the parent's)
out["rss_end_mb"] = rss_mb("VmRSS:")
print(json.dumps(out))
"""


def serve(uri: str, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache:
        child_env = {**os.environ, **env, "REC_MODEL_URI": uri, "REC_CACHE_DIR": cache, "REC_LOG_LEVEL": "WARNING"}
        out = subprocess.run([sys.executable, "-c", CHILD % {"requests": REQUESTS}], cwd=ROOT, env=child_env,
                             capture_output=True, text=True, check=True)  # fmt: skip
    return {k: round(v, 3) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--candidates", default="ivf,hnsw", help="approximate kinds --index auto may choose")
    args = parser.parse_args()
    import boto3

    import pipeline.index_choice

    pipeline.index_choice.AUTO_CANDIDATES = tuple(args.candidates.split(","))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"bytecode cache {'off' if os.environ.get('PYTHONDONTWRITEBYTECODE') else 'on'}", flush=True)  # fmt: skip
    results = []
    load = LoadWatch()
    with local_aws() as env:
        os.environ.update(env)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        for n_items in (int(s) for s in args.sizes.split(",")):
            uri = f"s3://{BUCKET}/scale-{n_items}"
            watch = LoadWatch()
            built = build_and_publish(n_items, uri)
            print(json.dumps(built), flush=True)
            served = serve(uri, env)
            print(json.dumps(served), flush=True)
            results.append({**built, **served, "load": watch.result(), "candidates": args.candidates})
    print(
        "\n| items | index (params) | build+tune s | recall@10 / filtered | µs/query exact → index (×) "
        "| bytes/item | cold start s | RSS MB | p50 / p99 ms | heavy filter p50 / p99 ms | batch users/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['items']:,} | {r['index']} {r['params'] or ''} | {r['build_s']} | {r['recall']:.3f} / "
              f"{r['filtered_recall']:.3f} | {r['exact_us']:.0f} → {r['index_us']:.0f} ({r['speedup']}×) | "
              f"{r['bytes_per_item']:.0f} | {r['cold_start_s']:.2f} | {r['rss_after_load_mb']:.0f} | "
              f"{r['plain_p50_ms']:.2f} / {r['plain_p99_ms']:.2f} | {r['heavy_filter_p50_ms']:.2f} / "
              f"{r['heavy_filter_p99_ms']:.2f} | {r['batch_users_per_s']:,.0f} |")  # fmt: skip
    # Sizes measured in earlier runs stay (a 1M run is long): each entry carries its own load record.
    earlier = json.loads(BENCH_FILE.read_text()).get("scale", {}).get("sizes", []) if BENCH_FILE.exists() else []
    measured = {r["items"] for r in results}
    sizes = sorted([*(r for r in earlier if r["items"] not in measured), *results], key=lambda r: r["items"])
    record("scale", {"sizes": sizes}, load)


if __name__ == "__main__":
    main()
