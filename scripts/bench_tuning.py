"""The default pipeline run on MovieLens-100K, judged through the front door: NDCG@10 from the real API's answers.

Per protocol, the train split is written as CSV files, ``python -m pipeline run`` publishes a model from them (as a
user would: a subprocess, per variant), uvicorn serves it, and every test user's ``POST /recommend`` (k=10) is scored
against their held-out ratings (binary relevance, every test rating relevant). Protocols:

- ``random``: Microsoft Recommenders' ``python_stratified_split`` (ratio 0.75, seed 42): a seeded random key per
  rating, then per user the first round(0.75·n) by key are train, the rest test;
- ``time``: Microsoft Recommenders' ``python_chrono_split`` (ratio 0.75): per user, the oldest round(0.75·n) ratings
  by timestamp are train, the newest the test (what ``--split time`` is judged on, with a larger holdout).

EASE (λ chosen on a validation split carved from train by the same protocol) and most-popular are computed in-process
for reference. Prints a table per protocol and writes docs/bench_tuning.json. Not a test; timings are wall-clock
seconds on whatever else the machine is doing (the load average is recorded).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from processes import PY, ROOT, ProcessGroup, wait_for

from pipeline.client import free_port, service_command
from pipeline.data import InteractionLog
from pipeline.metrics import ndcg_at_k
from pipeline.quality.baselines import EASE_L2, binary_matrix, ease, most_popular, rank_with
from pipeline.sources import load_source

K, SEED, VALIDATION_SEED = 10, 42, 43
OUTPUT = ROOT / "docs" / "bench_tuning.json"
VARIANTS = {"default": [], "no-tune": ["--no-tune"]}
PROTOCOL_FLAGS = {"random": [], "time": ["--split", "time"]}
HIDDEN_PARAMS = ("seed", "index", "source", "fingerprint", "tuned", "split")
CODE = ("pipeline", "layers/reccore/reccore", "functions/recommend/app")  # the code under test, hashed per run
REJECTED = ("unrecognized arguments", "invalid choice", "expected one argument")


def stratified_test(log: InteractionLog, seed: int, ratio: float = 0.75) -> np.ndarray:
    """python_stratified_split's test mask, as Recommenders computes it: a seeded random key per row (file order),
    rows sorted by user then key, and each user's rows after the first round(ratio·n) are test."""
    keys = np.random.RandomState(seed).rand(log.n_interactions)  # np.random.seed(seed); np.random.rand(n)
    return _after_first_share(log, keys, ratio)


def chrono_test(log: InteractionLog, ratio: float = 0.75) -> np.ndarray:
    """python_chrono_split's test mask: per user, the rows after the oldest round(ratio·n) by timestamp."""
    return _after_first_share(log, log.timestamps, ratio)


def _after_first_share(log: InteractionLog, keys: np.ndarray, ratio: float) -> np.ndarray:
    order = np.lexsort((keys, log.users))  # stable: ties in the key keep file order
    users = log.users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, counts)  # 0-based within the user
    test = np.zeros(log.n_interactions, dtype=bool)
    test[order[rank >= np.round(ratio * np.repeat(counts, counts))]] = True  # numpy rounds half to even, as round()
    return test


def code_digest() -> str:
    """A short sha256 of the code under test, to tie figures to the working tree (and catch edits mid-run)."""
    digest = hashlib.sha256()
    for path in sorted(path for folder in CODE for path in (ROOT / folder).rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def split(log: InteractionLog, protocol: str, seed: int) -> np.ndarray:
    return stratified_test(log, seed) if protocol == "random" else chrono_test(log)


def targets(log: InteractionLog, test: np.ndarray) -> dict[int, set[int]]:
    """Per evaluated user code, the relevant item codes: test items not rated in train, for users with a train row."""
    seen: dict[int, set[int]] = {}
    for user, item in zip(log.users[~test].tolist(), log.items[~test].tolist(), strict=True):
        seen.setdefault(user, set()).add(item)
    relevant: dict[int, set[int]] = {}
    for user, item in zip(log.users[test].tolist(), log.items[test].tolist(), strict=True):
        if user in seen and item not in seen[user]:
            relevant.setdefault(user, set()).add(item)
    return dict(sorted(relevant.items()))


def ndcgs(rankings: dict[int, list[int]], relevant: dict[int, set[int]]) -> np.ndarray:
    return np.array([ndcg_at_k(rankings.get(user, []), items, K) for user, items in relevant.items()])


def summary(values: np.ndarray) -> dict[str, float]:
    """Mean ± standard error (std / sqrt(n)) over users."""
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return {"ndcg@10": round(float(values.mean()), 4), "se": round(se, 4), "users": len(values)}


def baselines(train: InteractionLog, relevant: dict[int, set[int]], protocol: str, values: dict[str, np.ndarray]
              ) -> dict[str, Any]:  # fmt: skip
    """EASE with λ chosen on a validation split of ``train`` carved by the same protocol, and most popular."""
    inner = split(train, protocol, VALIDATION_SEED)
    fit, held = binary_matrix(train.subset(~inner)), targets(train, inner)
    grid = {l2: summary(ndcgs(rank_with(ease(fit, l2), fit, list(held), K), held))["ndcg@10"] for l2 in EASE_L2}
    best = max(grid, key=lambda l2: grid[l2])
    matrix, users = binary_matrix(train), list(relevant)
    values["EASE"] = ndcgs(rank_with(ease(matrix, best), matrix, users, K), relevant)
    values["popularity"] = ndcgs(rank_with(most_popular(matrix), matrix, users, K), relevant)
    validation = {"validation": {str(k): v for k, v in grid.items()}, "validation_users": len(held)}
    return {"ease": {"l2": best, **summary(values["EASE"]), **validation}, "popularity": summary(values["popularity"])}


def write_inputs(log: InteractionLog, train: np.ndarray, folder: Path) -> tuple[Path, Path]:
    interactions, items = folder / "train.csv", folder / "items.csv"
    pd.DataFrame({"user_id": log.user_ids[log.users[train]], "item_id": log.item_ids[log.items[train]],
                  "rating": log.weights[train].astype(int), "timestamp": log.timestamps[train]}
                 ).to_csv(interactions, index=False)  # fmt: skip
    pd.DataFrame({"item_id": log.item_ids, "title": log.titles, "category": log.categories,
                  "price": log.prices}).to_csv(items, index=False)  # fmt: skip
    return interactions, items


def run_pipeline(inputs: tuple[Path, Path], output: Path, flags: list[str], env: dict[str, str], timeout: float
                 ) -> dict[str, Any]:  # fmt: skip
    """One ``pipeline run --json``; the run's figures, or ``{"error": ...}`` if the CLI rejected a flag."""
    command = [PY, "-m", "pipeline", "run", "--source", str(inputs[0]), "--items", str(inputs[1]),
               "--output", str(output), "--json", *flags]  # fmt: skip
    load, start = os.getloadavg()[0], time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"bench_tuning: pipeline run {' '.join(flags)} took over {timeout:.0f} s; stopped") from None
    seconds = round(time.perf_counter() - start, 1)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        if done.returncode == 2 and any(text in done.stderr for text in REJECTED):
            return {"error": f"the CLI rejected {' '.join(flags)}: {tail.splitlines()[-1]}", "flags": flags}
        raise SystemExit(f"bench_tuning: pipeline run failed (exit {done.returncode}):\n  {' '.join(command)}\n{tail}")
    try:
        result = json.loads(done.stdout[done.stdout.find("{") :])
    except json.JSONDecodeError as exc:
        raise SystemExit(f"bench_tuning: pipeline run printed no JSON ({exc}):\n{done.stdout[-500:]}") from None
    return {"flags": flags, "wall_seconds": seconds, "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2), "split": result["params"].get("split"),
            "params": result["params"], "tuning": result["tuning"], "pipeline_metrics": result["metrics"],
            "version": result["version"], "reused": result.get("reused"), "timings": result.get("timings")}  # fmt: skip


def serve_and_score(model: Path, log: InteractionLog, relevant: dict[int, set[int]], env: dict[str, str]
                    ) -> tuple[dict[str, Any], np.ndarray]:  # fmt: skip
    """Serve ``model`` with uvicorn and score every evaluated user's ``POST /recommend`` answer."""
    port, codes = free_port(), {item: code for code, item in enumerate(log.item_ids.tolist())}
    group = ProcessGroup({**env, "REC_MODEL_URI": str(model), "REC_LOG_LEVEL": "WARNING"})
    rankings: dict[int, list[int]] = {}
    strategies: dict[str, int] = {}
    try:
        api = group.start(*service_command(port, "--no-access-log", "--log-level", "warning",
                                           "--timeout-graceful-shutdown", "5"))  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/health", "API", api, timeout=120)
        start = time.perf_counter()
        with httpx.Client(base_url=url, timeout=httpx.Timeout(15.0)) as client:
            for user in relevant:
                answer = client.post("/recommend", json={"user_id": str(log.user_ids[user]), "k": K})
                if answer.status_code != 200:
                    raise SystemExit(f"bench_tuning: POST /recommend answered {answer.status_code}: {answer.text}")
                body = answer.json()
                strategies[body["strategy"]] = strategies.get(body["strategy"], 0) + 1
                rankings[user] = [codes[entry["item_id"]] for entry in body["items"]]
        seconds = time.perf_counter() - start
    except httpx.HTTPError as exc:
        raise SystemExit(f"bench_tuning: the API at {url} failed: {exc!r}") from None
    finally:
        group.stop()
    values = ndcgs(rankings, relevant)
    return {**summary(values), "strategies": strategies, "requests_seconds": round(seconds, 1)}, values


def setting(run: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in run["params"].items() if k not in HIDDEN_PARAMS)


def bench_protocol(log: InteractionLog, protocol: str, variants: list[str], timeout: float) -> dict[str, Any]:
    test = split(log, protocol, SEED)
    relevant, train = targets(log, test), log.subset(~test)
    report: dict[str, Any] = {"train_ratings": int((~test).sum()), "test_ratings": int(test.sum()),
                              "users": len(relevant), "variants": {}}  # fmt: skip
    values: dict[str, np.ndarray] = {}
    report.update(baselines(train, relevant, protocol, values))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REC_")}  # the defaults, not this shell's
    with tempfile.TemporaryDirectory(prefix=f"bench-tuning-{protocol}-") as tmp:
        inputs = write_inputs(log, ~test, Path(tmp))
        for variant in variants:
            output, code = Path(tmp) / variant, code_digest()
            run = run_pipeline(inputs, output, PROTOCOL_FLAGS[protocol] + VARIANTS[variant], env, timeout)
            if "error" not in run:
                run["api"], values[variant] = serve_and_score(output, log, relevant, env)
            run["code"], run["code_changed_during_run"] = code, code_digest() != code
            report["variants"][variant] = run
    pairs = [
        (a, b) for a, b in (("default", "no-tune"), ("default", "EASE"), ("no-tune", "EASE")) if {a, b} <= set(values)
    ]
    report["paired"] = {f"{a} - {b}": summary(values[a] - values[b]) for a, b in pairs}  # same users, same order
    return report


def print_table(protocol: str, report: dict[str, Any]) -> None:
    print(f"\n{protocol}: {report['train_ratings']:,} train / {report['test_ratings']:,} test ratings, "
          f"{report['users']} test users, NDCG@{K} (± s.e.)")  # fmt: skip
    print(f"  {'variant':<16}{'NDCG@10':>18}{'users':>7}{'wall s':>8}  {'split':<7}setting")
    for name, run in report["variants"].items():
        if "error" in run:
            print(f"  {name:<16}FAILED: {run['error']}")
            continue
        api = run["api"]
        figure = f"{api['ndcg@10']:.4f} ± {api['se']:.4f}"
        print(f"  {name:<16}{figure:>18}{api['users']:>7}{run['wall_seconds']:>8.1f}  {run['split']!s:<7}"
              f"{setting(run)}")  # fmt: skip
        print(f"  {'':<16}tuning: {run['tuning'] or 'none'}; strategies {api['strategies']}; code {run['code']}")
        if run["code_changed_during_run"]:
            print(f"  {'':<16}WARNING: the code under test ({', '.join(CODE)}) changed during this run")
    for name, base in ((f"EASE λ={report['ease']['l2']:g}", report["ease"]), ("popularity", report["popularity"])):
        figure = f"{base['ndcg@10']:.4f} ± {base['se']:.4f}"
        print(f"  {name:<16}{figure:>18}{base['users']:>7}{'':>8}  in-process reference")
    for name, diff in report["paired"].items():
        print(f"  paired {name}: {diff['ndcg@10']:+.4f} ± {diff['se']:.4f} (mean per-user difference ± s.e.)")


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench_tuning.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--protocols", default="random,time", help="comma-separated: random, time")
    parser.add_argument("--variants", default="default,no-tune", help="comma-separated: default, no-tune")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per pipeline run (safety stop)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="JSON file (default: docs/bench_tuning.json)")
    args = parser.parse_args()
    protocols, variants = args.protocols.split(","), args.variants.split(",")
    if unknown := [p for p in protocols if p not in PROTOCOL_FLAGS] + [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown protocol or variant: {', '.join(unknown)}")
    start = time.perf_counter()
    log = load_source("movielens-100k", None, interactions=100_000, seed=SEED, events=None)
    results: dict[str, Any] = {"k": K, "cpus": os.cpu_count(), "load_at_start": round(os.getloadavg()[0], 2),
                               "protocols": {}}  # fmt: skip
    for protocol in protocols:
        results["protocols"][protocol] = bench_protocol(log, protocol, variants, args.timeout)
        print_table(protocol, results["protocols"][protocol])
    results["seconds"] = round(time.perf_counter() - start, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.output} in {results['seconds']:.0f} s (wall-clock; load average at start "
          f"{results['load_at_start']} on {results['cpus']} cores)")  # fmt: skip
    failed = [f"{p}/{v}" for p, r in results["protocols"].items() for v, run in r["variants"].items() if "error" in run]
    if failed:
        print(f"bench_tuning: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
