"""Online experiments end to end (issue 22): how many simulated users the decision job needs, and what it costs.

One local run on 127.0.0.1: moto's S3 (``local_aws()``), the real API over HTTP (uvicorn in a thread of this
process, checking LATEST and the experiment on every request), the simulated users of
``pipeline.experiment.simulate`` and the decision job ``pipeline.experiment.control.evaluate``:

1. rollback: champion = the default pipeline run on 100k synthetic interactions (seed 42, tuned), challenger =
   the same with 2 factors and no tuning, at a 50% share;
2. promote: the same two models the other way round (LATEST = the 2-factor model);
3. A/A: the champion against itself, 20 fresh experiments (``control.stop`` then ``control.start``), other
   simulator seeds each;
4. the per-request cost of the impression log in process: ``impression(...)`` + ``ImpressionLog.log(...)``.

Simulated users come in batches of 250 (``simulate(api, 250, seed=batch)``); ``control.evaluate`` runs after each
batch, as a scheduled job would look again and again, until it decides or the user limit is reached (5,000 for
1 and 2, ``--aa-users`` per A/A seed). Before each look the service's impression queue is flushed, so that the
look sees every impression whose clicks it sees (a deployed job reads up to a second's worth fewer).

The decision job re-reads the whole event and impression log at every look, so the cost of a look grows with
everything ever logged under the prefix. To keep 20 A/A experiments within minutes, the previous A/A's events and
impressions are deleted before the next starts (attribution filters by experiment id, so this changes no count);
the cost per stored object is printed.

    .venv/bin/python scripts/bench_experiment.py            (12-17 minutes on 2 cores; renices itself to 10)
    .venv/bin/python scripts/bench_experiment.py --smoke    (one batch each, nothing recorded)

Figures go to the ``experiment`` section of docs/bench.json. Goals: the A/A decides at most 1 time in 20;
the impression log costs at most 0.1 ms per request (p50).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench_record import LoadWatch, record
from local_stack import local_aws

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-experiment"
URI = f"s3://{BUCKET}/experiment"
INTERACTIONS, LOG_SEED = 100_000, 42
SHARE, BATCH = 0.5, 250
MAX_USERS, AA_SEEDS = 5000, 20
# 2,000 users per A/A run were asked for: at ~75 simulated users/s (one process, one GIL, 2 cores) plus looks that
# re-read each run's log, 20 × 2,000 alone takes ~15 minutes, so each A/A run stops at 1,500 (6 looks): measured
# 978 s for the 20 at 1,500 with another process using one core of two.
AA_USERS, AA_USERS_ASKED = 1500, 2000
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


def describe(name: str, run: dict[str, Any]) -> str:
    lines = [f"{name}: {run['decision']} after {run['users']:,} simulated users ({run['looks']} looks)"]
    for arm, v in run["variants"].items():
        lo, hi = v["ctr_ci"]
        lines.append(f"  {arm:<10} {v['impressions']:>5,} impressions, {v['clicks']:>5,} clicked, "
                     f"CTR {v['ctr']:.4f} [{lo:.4f}, {hi:.4f}]")  # fmt: skip
    lines.append(f"  intervals separate: {run['intervals_separate']}; {run['reason']}")
    lines.append(f"  {run['users_per_s']} simulated users/s; a look takes {run['look_s_median']} s median, "
                 f"{run['look_s_max']} s max; API errors {run['errors'] or 'none'}")  # fmt: skip
    return "\n".join(lines)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-users", type=int, default=MAX_USERS, help="limit of the rollback and promote runs")
    parser.add_argument("--aa-seeds", type=int, default=AA_SEEDS)
    parser.add_argument("--aa-users", type=int, default=AA_USERS, help="limit of each A/A run")
    parser.add_argument("--smoke", action="store_true", help="one batch per run, one A/A seed, nothing recorded")
    args = parser.parse_args()
    if args.smoke:
        args.max_users, args.aa_seeds, args.aa_users = BATCH, 1, BATCH
    if os.nice(0) < 10:
        os.nice(10 - os.nice(0))
    wall = time.perf_counter()
    load = LoadWatch()
    import boto3

    from pipeline.experiment import control
    from reccore.layout import LATEST_KEY
    from reccore.storage import open_store

    overhead = impression_overhead()
    print(f"impression log, in process: p50 {overhead['p50_ms']} ms, p99 {overhead['p99_ms']} ms per request "
          f"over {overhead['calls']:,} calls (goal p50 ≤ 0.1 ms)", flush=True)  # fmt: skip
    with local_aws() as env, tempfile.TemporaryDirectory() as cache:
        os.environ.update(env)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        good, bad, train_s = publish_models()
        print(f"published good {good} and bad (2 factors) {bad} in {train_s:.1f} s", flush=True)
        store = open_store(URI)
        service = Service(cache)
        try:
            store.put(LATEST_KEY, good.encode())
            rollback = experiment(store, service, challenger=bad, champion=good, max_users=args.max_users)
            print(describe("rollback (bad challenger)", rollback), flush=True)
            store.put(LATEST_KEY, bad.encode())
            promote = experiment(store, service, challenger=good, champion=bad, max_users=args.max_users)
            print(describe("promote (good challenger)", promote), flush=True)

            # A/A: time one look per stored log object first (the cost that clear_logs keeps bounded)
            objects = len(log_keys(store))
            start = time.perf_counter()
            control.status(store)
            per_object_ms = (time.perf_counter() - start) / max(objects, 1) * 1e3
            store.put(LATEST_KEY, good.encode())
            aa_runs, aa_start = [], time.perf_counter()
            for seed in range(1, args.aa_seeds + 1):
                cleared = clear_logs(store)
                run = experiment(store, service, challenger=good, champion=good, max_users=args.aa_users,
                                 seed_base=1000 * seed)  # fmt: skip
                run["cleared_objects"] = cleared
                aa_runs.append(run)
                arms = "  ".join(f"{a} CTR {v['ctr']:.4f} [{v['ctr_ci'][0]:.4f}, {v['ctr_ci'][1]:.4f}]"
                                 for a, v in run["variants"].items())  # fmt: skip
                print(f"A/A seed {seed:>2}: {run['decision']:<8} after {run['users']:,} users  {arms}"
                      f"  errors {run['errors'] or 'none'}", flush=True)  # fmt: skip
            aa_s = time.perf_counter() - aa_start
        finally:
            service.close()
    decided = [r for r in aa_runs if r["decision"] != "continue"]
    aa = {
        "seeds": args.aa_seeds,
        "users_per_seed": args.aa_users,
        "users_per_seed_asked": AA_USERS_ASKED,
        "decided": len(decided),
        "decisions": dict(Counter(r["decision"] for r in aa_runs)),
        "seconds": round(aa_s, 1),
        "look_s_median": round(statistics.median(r["look_s_median"] for r in aa_runs), 3),
        "look_ms_per_log_object": round(per_object_ms, 2),
        "runs": aa_runs,
    }
    total_s = time.perf_counter() - wall
    reduced = f"; reduced from the {AA_USERS_ASKED:,} asked, for time" if args.aa_users < AA_USERS_ASKED else ""
    print(f"\nA/A: {len(decided)} of {args.aa_seeds} decided ({aa['decisions']}; goal ≤ 1 in 20), up to "
          f"{args.aa_users:,} users each{reduced}; {aa_s:.0f} s", flush=True)  # fmt: skip
    print(f"a look costs {per_object_ms:.2f} ms per stored event or impression object (the job re-reads the whole "
          f"log every time)", flush=True)  # fmt: skip
    for name, run, expected in (("rollback", rollback, "rollback"), ("promote", promote, "promote")):
        if run["decision"] != expected:
            print(f"SURPRISE: the {name} run ended in {run['decision']!r}", flush=True)
    print(f"total {total_s:.0f} s", flush=True)
    if args.smoke:
        return
    figures = {
        "setup": {
            "interactions": INTERACTIONS,
            "seed": LOG_SEED,
            "share": SHARE,
            "batch": BATCH,
            "max_users": args.max_users,
            "good": good,
            "bad": bad,
            "train_s": round(train_s, 1),
            "service": "uvicorn in-process thread, REC_REFRESH_SECONDS=0, moto S3 (local_aws)",
        },
        "rollback": rollback,
        "promote": promote,
        "aa": aa,
        "impression_overhead": overhead,
        "total_s": round(total_s, 1),
    }
    record("experiment", figures, load)


if __name__ == "__main__":
    main()
