"""The pipeline's command line: .venv/bin/python -m pipeline COMMAND --help for each command's options.

Examples:
  .venv/bin/python -m pipeline run --output ./models                      train on the synthetic log, publish
  .venv/bin/python -m pipeline run --source data.csv --items items.csv --output s3://bucket/recsys
  .venv/bin/python -m pipeline evaluate                                   MovieLens-100K report
  .venv/bin/python -m pipeline batch --model ./models --users all --output recs.parquet
  .venv/bin/python -m pipeline generate --interactions 10000000          a large synthetic log as Parquet
  .venv/bin/python -m pipeline experiment status --model ./models        the online experiment

Flags override the REC_* environment (reccore/settings.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.evaluate import HOLDOUT, MIN_HISTORY, OBJECTIVES
from pipeline.job import GATE_METRIC, RunResult, run
from pipeline.reporting import StageEvent, print_stage, progress_enabled
from reccore.errors import ConfigError, RecError
from reccore.settings import BatchSettings, PipelineSettings
from reccore.weighting import SCHEMES

# The settings `python -m pipeline run` takes as --name VALUE, and as --name / --no-name.
RUN_OPTIONS = ("source", "items", "events", "output", "interactions", "n_items", "seed", "factors", "weighting",
               "scaling", "shrinkage", "pop_alpha", "min_rating", "index", "min_recall", "exact_below", "retention",
               "user_table", "user_events", "split", "tune_max_interactions", "engine", "master",
               "driver_memory")  # fmt: skip
RUN_SWITCHES = ("user_arrays", "centre", "tune", "reuse")


def _origin(name: str, default: object) -> str:
    """Where a run option comes from: its environment variable, and its default if it has one."""
    shown = "" if default is None or default == "" else f"; default: {_escaped(str(default))}"
    return f"env REC_{name.upper()}{shown}"


def _escaped(text: str | None) -> str:
    """A settings description as argparse help text, whose ``%`` starts a format code."""
    return (text or "").replace("%", "%%")


def build_parser(defaults: PipelineSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="train, evaluate, index and publish a model")
    fields = PipelineSettings.model_fields
    for name in RUN_OPTIONS:
        info = fields[name]
        kind = type(getattr(defaults, name)) if getattr(defaults, name) is not None else str
        choices = getattr(info.annotation, "__args__", None) if name in ("weighting", "index", "engine") else None
        choices = OBJECTIVES if name == "split" else choices
        run_cmd.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name), choices=choices,
            help=f"{_escaped(info.description)} ({_origin(name, getattr(defaults, name))})",
        )  # fmt: skip
    run_cmd.add_argument("--force", action="store_true", default=defaults.force, help=fields["force"].description)
    for flag in RUN_SWITCHES:
        run_cmd.add_argument(
            f"--{flag.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=getattr(defaults, flag),
            help=f"{_escaped(fields[flag].description)} ({_origin(flag, getattr(defaults, flag))})",
        )  # fmt: skip
    run_cmd.add_argument("--json", action="store_true", help="print the summary as JSON")
    run_cmd.add_argument("--stages", action="store_true",
                         help="print each stage's start and end (seconds) on stderr, also with --json")  # fmt: skip
    add_evaluate_parser(commands, defaults)
    add_experiment_parser(commands)
    add_simulate_parser(commands)
    add_batch_parser(commands)
    generate_cmd = commands.add_parser("generate", help="write the synthetic log as partitioned Parquet (any size)")
    generate_cmd.add_argument(
        "--interactions", type=int, default=defaults.interactions, help="rows (default: %(default)s)"
    )
    generate_cmd.add_argument(
        "--n-items", default=defaults.n_items,
        help=f"{_escaped(PipelineSettings.model_fields['n_items'].description)} (env REC_N_ITEMS; default: "
        "%(default)s)",
    )  # fmt: skip
    generate_cmd.add_argument("--seed", type=int, default=defaults.seed, help="seed (default: %(default)s)")
    generate_cmd.add_argument("--output", type=Path, required=True,
                              help="directory: writes interactions/part-*.parquet and items.parquet")  # fmt: skip
    return parser


def add_batch_parser(commands: Any) -> None:
    defaults = BatchSettings()
    cmd = commands.add_parser("batch", help="top-k for many users into Parquet, as the API answers them")
    for name in ("model", "users", "k", "output", "threads"):
        info = BatchSettings.model_fields[f"batch_{name}"]
        value = getattr(defaults, f"batch_{name}")
        help_text = f"{_escaped(info.description)} (env REC_BATCH_{name.upper()}; default: %(default)s)"
        cmd.add_argument(f"--{name}", type=type(value), default=value, help=help_text)
    cmd.add_argument("--json", action="store_true", help="print the summary as JSON")


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


def _stage_to_stderr(event: StageEvent) -> None:
    seconds = "" if event.seconds is None else f" {event.seconds:.1f} s"
    print(f"{event.stage}: {event.status}{seconds}", file=sys.stderr, flush=True)


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
        f"train on it: python -m pipeline run --engine spark --source {interactions} --items {items}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        defaults = PipelineSettings()
        args = build_parser(defaults).parse_args(argv)
        if args.command == "evaluate":
            print(evaluate_command(args, defaults))
            return 0
        if args.command == "batch":
            from pipeline.batch import run_batch

            fields = {f"batch_{k}": v for k, v in vars(args).items() if k not in ("command", "json")}
            batch = run_batch(BatchSettings(**fields))
            print(json.dumps(batch.to_dict(), indent=2) if args.json else (
                f"wrote {batch.rows:,} rows for {batch.users:,} users to {batch.output} "
                f"in {batch.seconds:.2f} s ({batch.users_per_second:,.0f} users/s), "
                f"model {batch.model_version}"))  # fmt: skip
            return 0
        if args.command == "generate":
            print(generate_command(args))
            return 0
        if args.command == "experiment":
            print(experiment_command(args))
            return 0
        if args.command == "simulate":
            print(simulate_command(args))
            return 0
        overrides = {k: v for k, v in vars(args).items() if k not in ("command", "json", "stages")}
        settings = PipelineSettings(**overrides)
        result = run(
            settings,
            progress=progress_enabled(settings.progress) and not args.json,
            on_stage=_stage_to_stderr if args.stages else None if args.json else print_stage,
        )
    except RecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else summary(result))
    return 0


def summary(result: RunResult) -> str:
    headline = f"reused {result.version}: not retrained" if result.reused else f"published {result.version}"
    lines = [headline, f"  manifest {result.uri}", "", "stage timings (s):"]
    lines += [f"  {name:<28} {seconds:7.2f}" for name, seconds in result.timings.items()]
    lines.append(f"  {'total':<28} {sum(result.timings.values()):7.2f}")
    data = result.data
    lines += [
        "",
        f"data: {data['n_interactions']:,} interactions, {data['n_users']:,} users, {data['n_items']:,} items "
        f"({data['content_based_items']:,} content-based), density {data['density']:.4%}",
        f"index: {result.index['type']}, {result.index['dims']} dims"
        + (f", recall@10 {result.index['recall_at_10']:.3f}" if result.index["recall_at_10"] is not None else ""),
        f"artifacts: {sum(result.sizes.values()) / 1e6:.1f} MB in {len(result.sizes)} files",
        result.tuning or "not tuned: hyperparameters as given (--tune searches them on validation folds)",
        "",
        _metrics_table(result.metrics, result.params.get("split", "time")),
        baseline_line(result.metrics, result.params.get("split", "time")),
    ]
    sync = result.user_sync
    if sync is not None and sync["status"] == "ok":
        lines.append(
            f"user sync to {sync['table']}: {sync['users_written']:,} users written, "
            + (f"{sync['users_failed']:,} refused by the table (see the log), " if sync.get("users_failed") else "")
            + f"{sync['users_skipped']:,} "
            f"already current, in {sync['seconds']:.1f} s"
        )
    elif sync is not None:
        lines.append(f"user sync to {sync['table']} FAILED (the model is published): {sync['error']}")
    return "\n".join(lines)


def split_title(objective: str) -> str:
    """How the run's held-out interactions were chosen, in words."""
    chosen = "newest" if objective == "time" else "seeded random"
    return f"{objective} split (each user's {chosen} {HOLDOUT:.0%} of interactions held out, for users with at least " \
        f"{MIN_HISTORY})"  # fmt: skip


def baseline_line(metrics: dict[str, dict[str, Any]], objective: str) -> str:
    """One sentence saying which split the gate's NDCG@10 is on and what the popularity baseline scored there."""
    model, popular = metrics["model"][GATE_METRIC], metrics["popularity"][GATE_METRIC]
    users = metrics["model"].get("users")
    ratio = f"{model / popular:.2f}× the baseline" if popular > 0 else "the baseline scored 0"
    verdict = "" if model > popular else "; below it, published only because of --force"
    return (
        f"NDCG@10 is on a {split_title(objective)[:-1]}{f'; {int(users):,} users evaluated' if users else ''}): "
        f"the model scored {model:.4f}, "
        f"the popularity baseline {popular:.4f} ({ratio}{verdict})."
    )


def _metrics_table(metrics: dict[str, dict[str, Any]], objective: str) -> str:
    names = [n for n in next(iter(metrics.values())) if n != "users"]
    header = f"  {'':<12}" + "".join(f"{n:>16}" for n in names)
    rows = [f"  {model:<12}" + "".join(f"{values[n]:>16.4f}" for n in names) for model, values in metrics.items()]
    return "\n".join([f"evaluation on a {split_title(objective)}:", header, *rows])
