"""The performance page's figures (docs/performance.md), generated from docs/bench.json (what ``make bench`` measured).

``python scripts/bench_report.py --write`` rewrites the block between the markers in docs/performance.md;
``--check`` exits 1 if the performance page's figures and the file disagree (a test runs the same comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_record import BENCH_FILE, ROOT
from doc_block import block

README = ROOT / "docs" / "performance.md"  # where the generated block lives
BEGIN = "<!-- bench:begin: generated from docs/bench.json by scripts/bench_report.py (make bench); do not edit -->"
END = "<!-- bench:end -->"


def _ms(figures: dict[str, Any]) -> str:
    return f"{figures['p50_ms']:.2f}"


def _size(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def _count(n: int) -> str:
    return f"{n / 1e3:.0f}k" if n >= 100_000 else f"{n:,}"


def _load_sentence(bench: dict[str, Any]) -> str:
    loads = {name: section["load"] for name, section in bench.items()}
    if all(load["quiet"] for load in loads.values()):
        return "The machine was quiet: other processes used under 0.1 core on average during each benchmark."
    cores = bench["service"]["environment"]["cores"]
    noisy = {name: load for name, load in loads.items() if not load["quiet"]}
    parts = "; ".join(
        f"{load['other_processes_cores']:.1f} during the {name} benchmark" for name, load in noisy.items()
    )
    start = max(load["loadavg_start"][0] for load in noisy.values())
    return (
        f"**Some benchmarks shared the machine**: other processes kept cores of its {cores} busy on average "
        f"({parts}; 1-minute load average up to {start:.1f} at the start), so those figures are slower and noisier "
        "than a quiet machine's, the p99s most of all. The others ran on a quiet machine."
    )


def _bytecode(env: dict[str, Any]) -> str:
    cache = env["bytecode_cache"]
    if cache["on"]:
        return "the bytecode cache on" + (" (`PYTHONPYCACHEPREFIX`)" if cache["PYTHONPYCACHEPREFIX"] else "")
    return (
        f"the bytecode cache off (`PYTHONDONTWRITEBYTECODE={cache['PYTHONDONTWRITEBYTECODE']}`, set machine-wide: "
        "installed packages use the `.pyc` pip wrote, the repository's modules are compiled in every process)"
    )


def _pipeline_rows(pipeline: dict[str, Any]) -> list[str]:
    rows = []
    imports = pipeline["import_s"]
    for run in pipeline["runs"]:
        command = "the default command (tuning included)" if run.get("tuned") else "`--no-tune`"
        what = (
            f"pipeline, {_size(run['interactions'])} interactions ({_count(run['users'])} users × "
            f"{_count(run['items'])} items), {command}, evaluation included: wall / peak RSS"
        )
        measured = (
            f"**{run['wall_s']:.1f} s** / {run['peak_rss_mb']:,} MB — the job's stages take {run['stages_s']:.1f} s"
        )
        if run is pipeline["runs"][0]:
            measured += (
                f"; importing the pipeline takes {imports['pipeline.cli']:.1f} s in a fresh process (scikit-learn's "
                f"randomized SVD module alone {imports['sklearn.utils.extmath']:.1f} s)"
            )
        rows.append(f"| {what} | {run['target'] or '—'} | {measured} |")
    return rows


def _service_rows(service: dict[str, Any]) -> list[str]:
    targets, in_process, http = service["targets"], service["in_process"], service["http"]
    known = in_process["/recommend known user"]
    labels = {"fold-in": "/recommend fold-in", "popular": "/recommend popular", "similar": "/items/{id}/similar",
              "health": "/health"}  # fmt: skip
    others = ", ".join(f"{label} {_ms(in_process[name])}" for label, name in labels.items())
    http_known = http["/recommend known user"]
    cold, imports = service["cold_start"], service["cold_start"]["import_s"]
    rows = [
        "| in-process handler (event → Mangum → response), `/recommend` known user, p50 / p99 | "
        f"{targets['in_process']} | **{_ms(known)} ms** / {known['p99_ms']:.2f} ms (p50: {others} ms) |",
        "| HTTP via uvicorn, 1 worker, sequential keep-alive, `/recommend` p50 / p99 | "
        f"{targets['http']} | **{_ms(http_known)} ms** / {http_known['p99_ms']:.2f} ms |",
    ]
    for key, label in (("cache_off", "bytecode cache off"), ("cache_on", "bytecode cache on (warmed)")):
        figures = cold[key]
        detail = f"min {figures['min_s']:.2f}, max {figures['max_s']:.2f}; import {figures['import_median_s']:.2f} s"
        if key == "cache_off":
            detail += "; " + ", ".join(f"`import {m}` {s:.2f} s" for m, s in imports.items())
        rows.append(
            f"| cold start, {label}: fresh process, import → first `/recommend` answer | {targets['cold_start']} | "
            f"**{figures['median_s']:.2f} s** median of {figures['runs']} ({detail}) |"
        )
    return rows


def _users_rows(users: dict[str, Any]) -> list[str]:
    """Cold start and API memory against the number of users (scripts/bench_users.py)."""
    rows = [
        "",
        "Cold start and API memory against the number of users (`make bench-users`, `scripts/bench_users.py`: "
        "synthetic users over the default 10,000 items, one model published with and without per-user arrays; "
        "fresh process, import → first `/recommend` answer, bytecode cache on; RSS after the answer and its peak):",
        "",
        "| users (interactions) | per-user arrays | artifact | cold start, median (min–max) | RSS / peak |",
        "|---|---|---:|---:|---:|",
    ]
    for row in users["rows"]:
        arrays = "in the artifact" if row["user_arrays"] else "none (item-side only)"
        rows.append(
            f"| {row['users']:,} ({row['interactions']:,}) | {arrays} | {row['artifact_mb']:.1f} MB | "
            f"**{row['total_s']:.2f} s** ({row['min_s']:.2f}–{row['max_s']:.2f}; import {row['import_s']:.2f} s) | "
            f"{row['rss_mb']} / {row['peak_rss_mb']} MB |"
        )
    return rows


def _realtime_rows(realtime: dict[str, Any]) -> list[str]:
    """The real-time loop (scripts/bench_realtime.py): events in, and the next answer."""
    rows = [
        "",
        "The real-time loop (`scripts/bench_realtime.py`: the default model; the embedded store against DynamoDB "
        "and Firehose on the local moto server; in-process through the Lambda handler, and over HTTP via uvicorn):",
        "",
        "| store | path | what | p50 / p99 | throughput |",
        "|---|---|---|---:|---:|",
    ]
    for row in realtime["rows"]:
        extra = f"{row['events_per_s']:,} events/s" if "events_per_s" in row else ""
        if "next_request_changed" in row:
            extra = f"next request changed: {row['next_request_changed']}"
        rows.append(
            f"| {row['store']} | {row['mode']} | {row['what']} | {row['p50_ms']:.2f} / {row['p99_ms']:.2f} ms | "
            f"{extra} |"
        )
    return rows


def render(bench: dict[str, Any]) -> str:
    """The Markdown block: the conditions of the measurement, then the table."""
    env, service = bench["service"]["environment"], bench["service"]
    model = service["model"]
    dates = sorted({section["recorded"][:10] for section in bench.values()})
    lines = [
        BEGIN,
        f"Measured with `make bench` on {' and '.join(dates)}; every figure is in [docs/bench.json](docs/bench.json). "
        f"Machine: {env['machine']} {env['cpu']}, {env['cores']} cores, {env['memory_gib']} GiB, Python "
        f"{env['python']}, FAISS dispatching to {service['faiss_simd']}; {_bytecode(env)}. Each pipeline run is a "
        f"fresh process; the service figures use the default {_size(model['interactions'])}-interaction model "
        f"({model['items']:,} items, {model['users']:,} users, {model['index']} index), artifacts in a local moto S3.",
        "",
        _load_sentence(bench),
        "",
        "| what | target | measured |",
        "|---|---|---|",
        *_pipeline_rows(bench["pipeline"]),
        *_service_rows(service),
        *(_users_rows(bench["users"]) if "users" in bench else []),
        *(_realtime_rows(bench["realtime"]) if "realtime" in bench else []),
        END,
    ]
    return "\n".join(lines)


def readme_block(text: str) -> str:
    """The generated block of the performance page, markers included; ValueError if the markers are missing."""
    return block(text, BEGIN, END)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the performance page's block from the bench file")
    mode.add_argument(
        "--check", action="store_true", help="exit 1 if the performance page's block differs from the bench file"
    )
    parser.add_argument("--bench", type=Path, default=BENCH_FILE)
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)

    expected = render(json.loads(args.bench.read_text()))
    text = args.readme.read_text()
    current = readme_block(text)
    if args.check:
        if current != expected:
            print(f"{args.readme} disagrees with {args.bench}: run `.venv/bin/python scripts/bench_report.py --write`")
            return 1
        print(f"{args.readme} matches {args.bench}")
        return 0
    args.readme.write_text(text.replace(current, expected))
    print(f"wrote the performance table of {args.readme} from {args.bench}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
