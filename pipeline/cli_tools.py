"""The commands around the run: ``evaluate`` (quality report), ``batch``, ``generate``, ``experiment``, ``simulate``.

Each has its parser (``add_*_parser``) and its command, which returns what the CLI prints (``python -m pipeline
run`` and its summary: :mod:`pipeline.cli_run`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.cli_run import escaped
from pipeline.reporting import progress_enabled
from reccore.errors import ConfigError
from reccore.settings import BatchSettings, PipelineSettings
from reccore.weighting import SCHEMES


def add_batch_parser(commands: Any) -> None:
    defaults = BatchSettings()
    cmd = commands.add_parser("batch", help="top-k for many users into Parquet, as the API answers them")
    for name in ("model", "users", "k", "output", "threads"):
        info = BatchSettings.model_fields[f"batch_{name}"]
        value = getattr(defaults, f"batch_{name}")
        help_text = f"{escaped(info.description)} (env REC_BATCH_{name.upper()}; default: %(default)s)"
        cmd.add_argument(f"--{name}", type=type(value), default=value, help=help_text)
    cmd.add_argument("--json", action="store_true", help="print the summary as JSON")


def batch_command(args: argparse.Namespace) -> str:
    from pipeline.batch import run_batch

    fields = {f"batch_{k}": v for k, v in vars(args).items() if k not in ("command", "json")}
    batch = run_batch(BatchSettings(**fields))
    return json.dumps(batch.to_dict(), indent=2) if args.json else (
        f"wrote {batch.rows:,} rows for {batch.users:,} users to {batch.output} "
        f"in {batch.seconds:.2f} s ({batch.users_per_second:,.0f} users/s), "
        f"model {batch.model_version}")  # fmt: skip


def _list_of(kind: Callable[[str], Any], allowed: Sequence[str] | None = None) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        values = [kind(part.strip()) for part in text.split(",") if part.strip()]
        bad = [v for v in values if allowed is not None and v not in allowed]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list{f' of {allowed}' if allowed else ''}")
        return values

    return parse


def add_evaluate_parser(commands: Any, defaults: PipelineSettings) -> None:
    from pipeline.quality.experiment import GRID_FACTORS, GRID_SCALINGS

    cmd = commands.add_parser("evaluate", help="quality report: both protocols, baselines, tuning grid, cold start")
    cmd.add_argument("--source", default="movielens-100k", help="as for run (default: %(default)s)")
    cmd.add_argument("--items", default=None, help="item metadata table for a file source")
    cmd.add_argument("--interactions", type=int, default=defaults.interactions, help="synthetic source size")
    cmd.add_argument("--seed", type=int, default=defaults.seed, help="seed of splits, SVD and sampling")
    cmd.add_argument("--report", type=Path, default=Path("docs/evaluation.md"), help="Markdown report path; the "
                     "plot goes to img/<stem>.png beside it (default: %(default)s)")  # fmt: skip
    cmd.add_argument("--factors", type=_list_of(int), default=list(GRID_FACTORS), help="grid of k, e.g. 10,20,50")
    cmd.add_argument("--weightings", type=_list_of(str, SCHEMES), default=list(SCHEMES), help="grid of weightings")
    cmd.add_argument("--scalings", type=_list_of(float), default=list(GRID_SCALINGS),
                     help="grid of singular-value exponents β (score x·V·Σ^β·Vᵀ)")  # fmt: skip


def evaluate_command(args: argparse.Namespace, defaults: PipelineSettings) -> str:
    """Run the quality evaluation and write the report; returns the console summary."""
    from pipeline.quality.coldstart import SvdConfig
    from pipeline.quality.experiment import run_evaluation
    from pipeline.quality.report import write_report
    from pipeline.sources import load_source

    start = time.perf_counter()
    log = load_source(args.source, args.items, interactions=args.interactions, seed=args.seed)
    load_seconds = time.perf_counter() - start
    default = SvdConfig(defaults.factors, defaults.weighting, defaults.scaling)
    result = run_evaluation(log, default, args.factors, args.weightings, args.scalings, args.seed,
                            progress=progress_enabled(defaults.progress))  # fmt: skip
    result.timings = {"load": load_seconds, **result.timings}
    report, image = write_report(result, args.report)
    from pipeline.quality.diversity import append_to_report

    diversity_line = append_to_report(report, log, default, args.seed)
    lines = [f"wrote {report} and {image} in {time.perf_counter() - start:.0f} s", diversity_line]
    for name, protocol in result.protocols.items():
        lines.append(f"{name} split NDCG@10: " + ", ".join(
            f"{label} {metrics['ndcg@10']:.4f}" for label, metrics in [
                *protocol.baselines.items(),
                ("default", protocol.svd[result.default]),
                ("recommended", protocol.svd[result.recommended]),
            ]
        ))  # fmt: skip
    for name, protocol in result.protocols.items():
        if protocol.nested is not None:
            from pipeline.quality.nested import ALL
            from pipeline.quality.nested_report import goal_line

            lines.append(
                f"chosen on validation: {protocol.nested.chosen[ALL][0].label}; {goal_line(name, protocol.nested)}"
            )
    lines.append(f"recommended: {result.recommended.label}")
    return "\n".join(lines)


def add_generate_parser(commands: Any, defaults: PipelineSettings) -> None:
    generate_cmd = commands.add_parser("generate", help="write the synthetic log as partitioned Parquet (any size)")
    generate_cmd.add_argument(
        "--interactions", type=int, default=defaults.interactions, help="rows (default: %(default)s)"
    )
    generate_cmd.add_argument(
        "--n-items", default=defaults.n_items,
        help=f"{escaped(PipelineSettings.model_fields['n_items'].description)} (env REC_N_ITEMS; default: "
        "%(default)s)",
    )  # fmt: skip
    generate_cmd.add_argument("--seed", type=int, default=defaults.seed, help="seed (default: %(default)s)")
    generate_cmd.add_argument("--output", type=Path, required=True,
                              help="directory: writes interactions/part-*.parquet and items.parquet")  # fmt: skip


def generate_command(args: argparse.Namespace) -> str:
    """Write the synthetic log chunk by chunk (bounded memory); returns the console summary."""
    from pipeline.sources.synthetic import write_parquet

    if args.interactions < 20:
        raise ConfigError(f"synthetic source: n_interactions must be >= 20, got {args.interactions}")
    n_items = PipelineSettings(n_items=args.n_items).n_items  # run's validation and one-line message
    start = time.perf_counter()
    interactions, items = write_parquet(args.interactions, args.seed, args.output, n_items=n_items)
    catalogue = "the catalogue" if n_items is None else f"the catalogue ({n_items:,} items)"
    return (
        f"wrote {args.interactions:,} interactions to {interactions} and {catalogue} to {items} "
        f"in {time.perf_counter() - start:.0f} s\n"
        f"train on it: .venv/bin/python -m pipeline run --engine spark --source {interactions} --items {items}"
    )


def add_experiment_parser(commands: Any) -> None:
    cmd = commands.add_parser("experiment", help="champion/challenger: start, status, evaluate (the decision), stop")
    actions = cmd.add_subparsers(dest="action", required=True)
    for name, text in (
        ("start", "serve a challenger version to a share of users (sticky per user or session)"),
        ("status", "impressions, clicks, CTR with always-valid intervals, and the decision so far"),
        ("evaluate", "run the decision once: rollback or promote if the sequential test decides"),
        ("stop", "end the experiment by hand: everyone back on the champion"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "--model", required=True, help="the model URI the services read (s3://bucket/prefix or DIR)"
        )
        if name == "start":
            action.add_argument("--challenger", required=True, help="a published version id")
            action.add_argument("--share", type=float, default=0.5, help="share of users on the challenger (0-1]")
        if name in ("status", "evaluate"):
            action.add_argument("--json", action="store_true", help="print the report as JSON")


def experiment_command(args: argparse.Namespace) -> str:
    from pipeline.experiment import control
    from reccore.storage import open_store

    store = open_store(args.model)
    if args.action == "start":
        experiment = control.start(store, args.challenger, args.share)
        return (f"started {experiment.id}: {experiment.challenger} against {experiment.champion} "
                f"at {experiment.share:.0%} of users")  # fmt: skip
    if args.action == "stop":
        return f"stopped {control.stop(store).id}: every user is back on the champion"
    report = control.evaluate(store) if args.action == "evaluate" else control.status(store)
    return json.dumps(report, indent=2) if args.json else control.describe(report)


def add_simulate_parser(commands: Any) -> None:
    cmd = commands.add_parser("simulate", help="drive the API as synthetic users who click and buy by their tastes")
    cmd.add_argument("--api", required=True, help="the API's base URL, e.g. http://127.0.0.1:8000")
    cmd.add_argument("--users", type=int, default=1000, help="simulated users (default: %(default)s)")
    cmd.add_argument("--seed", type=int, default=0, help="seed of the users' choices (default: %(default)s)")
    cmd.add_argument(
        "--interactions",
        type=int,
        default=100_000,
        help="the synthetic log whose tastes the users follow, as for run (default: %(default)s)",
    )


def simulate_command(args: argparse.Namespace) -> str:
    from pipeline.experiment.simulate import simulate

    result = simulate(args.api, args.users, args.seed, args.interactions)
    return json.dumps(result, indent=2)


COMMANDS: dict[str, Callable[[argparse.Namespace], str]] = {
    "batch": batch_command,
    "generate": generate_command,
    "experiment": experiment_command,
    "simulate": simulate_command,
}
