"""Spark engine benchmark: single-process vs Spark local[2], wall time, peak RSS per process kind, artifact size.

Each run is ``python -m pipeline run --json`` in a fresh process on the same synthetic Parquet data
(written once by the chunked generator under .cache/spark-data/N). Peak RSS is sampled every 0.25 s
from /proc over the run's process tree: the Python driver, the JVM (in local mode the Spark driver
and its executor threads), and the Python workers the JVM starts. Per-stage times come from the run.

Usage:
  python scripts/bench_spark.py [N ...]                 # default 1000000 10000000, both engines
  python scripts/bench_spark.py --spark-only --driver-memory 6g 100000000 [--no-user-arrays]
  python scripts/bench_spark.py --svd 100000            # computeSVD vs randomized SVDs on that matrix
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".cache" / "spark-data"


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _rss_kb(pid: int) -> tuple[str, int]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "gone", 0
    name = next(line.split()[1] for line in status.splitlines() if line.startswith("Name:"))
    rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return name, rss


class PeakRss(threading.Thread):
    """Peak summed RSS of the driver (root), the JVM and the Python workers, in MB."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.done = root, threading.Event()
        self.peak = {"driver": 0.0, "jvm": 0.0, "workers": 0.0}

    def run(self) -> None:
        while not self.done.wait(0.25):
            totals = {"driver": 0, "jvm": 0, "workers": 0}
            for pid in _tree(self.root):
                name, rss = _rss_kb(pid)
                kind = "driver" if pid == self.root else "jvm" if name == "java" else "workers"
                totals[kind] += rss
            for kind, kb in totals.items():
                self.peak[kind] = max(self.peak[kind], kb / 1024)


def dataset(n: int) -> tuple[Path, Path, Path]:
    """(partitioned directory, the same rows as one file for the single-process engine, items)."""
    import pyarrow.parquet as pq

    from pipeline.sources.synthetic import write_parquet

    root = DATA / str(n)
    interactions, items = root / "interactions", root / "items.parquet"
    if not items.exists():
        write_parquet(n, 42, root)
    single = root / "single.parquet"
    if not single.exists() and n <= 20_000_000:
        parts = sorted(interactions.glob("*.parquet"))
        with pq.ParquetWriter(single, pq.read_schema(parts[0])) as writer:
            for part in parts:
                writer.write_table(pq.read_table(part))
    return interactions, single, items


def run_once(engine: str, source: Path, items: Path, driver_memory: str, extra: list[str]) -> dict[str, object]:
    """One run; its stage progress and Spark's log go to .cache/spark-data/<engine>-<time>.log as it runs."""
    log_path = DATA / f"{engine}-{time.strftime('%H%M%S')}.log"
    with tempfile.TemporaryDirectory(dir=DATA) as output, log_path.open("w") as log:
        command = [sys.executable, "-m", "pipeline", "run", "--engine", engine, "--source", str(source),
                   "--items", str(items), "--output", output, "--json", "--stages", "--force",
                   "--master", "local[2]", "--driver-memory", driver_memory, *extra]  # fmt: skip
        print(f"  running {engine} on {source} (progress: {log_path})", flush=True)
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
        sampler = PeakRss(process.pid)
        sampler.start()
        out, _ = process.communicate()
        wall = time.perf_counter() - start
        sampler.done.set()
        if process.returncode != 0:
            raise SystemExit(f"{engine} failed after {wall:.0f} s: see {log_path}")
        result = json.loads(out)
    return {"engine": engine, "wall_s": wall, "rss_mb": sampler.peak, **result}


def report(n: int, result: dict[str, object]) -> None:
    rss = result["rss_mb"]
    assert isinstance(rss, dict)
    sizes = result["sizes"]
    assert isinstance(sizes, dict)
    print(f"\n{n:,} interactions, {result['engine']}: wall {result['wall_s']:.1f} s; peak RSS driver "
          f"{rss['driver']:.0f} MB, JVM {rss['jvm']:.0f} MB, Python workers {rss['workers']:.0f} MB; "
          f"artifacts {sum(sizes.values()) / 1e6:.1f} MB")  # fmt: skip
    timings = result["timings"]
    assert isinstance(timings, dict)
    for stage, seconds in timings.items():
        print(f"    {stage:<28} {seconds:8.1f} s")
    metrics = result["metrics"]
    assert isinstance(metrics, dict)
    print(f"    NDCG@10 model {metrics['model']['ndcg@10']:.4f}, popularity {metrics['popularity']['ndcg@10']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[1_000_000, 10_000_000])
    parser.add_argument("--spark-only", action="store_true")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--svd", type=int, metavar="N", default=0,
                        help="instead: compare the SVD methods on the N-interaction synthetic matrix")  # fmt: skip
    parser.add_argument("--no-user-arrays", action="store_true",
                        help="publish item-side artifacts only (per-user state in the user table)")  # fmt: skip
    args = parser.parse_args()
    extra = ["--no-user-arrays"] if args.no_user_arrays else []
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {load[0]:.1f} at start")  # fmt: skip
    if args.svd:
        from bench_spark_svd import compare

        compare(args.svd)
        return
    for n in args.sizes:
        directory, single, items = dataset(n)
        if not args.spark_only:
            report(n, run_once("single-process", single, items, args.driver_memory, extra))
        report(n, run_once("spark", directory, items, args.driver_memory, extra))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (2 cores shared with other jobs)")


if __name__ == "__main__":
    main()
