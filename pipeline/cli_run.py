"""``python -m pipeline run``: its options (every run setting as a flag over its ``REC_*`` variable) and its summary."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipeline.evaluate import HOLDOUT, MIN_HISTORY, OBJECTIVES
from pipeline.job import GATE_METRIC, RunResult, run
from pipeline.reporting import StageEvent, print_stage, progress_enabled
from reccore.settings import PipelineSettings

# The settings `python -m pipeline run` takes as --name VALUE, and as --name / --no-name.
RUN_OPTIONS = ("source", "items", "events", "output", "interactions", "n_items", "seed", "factors", "weighting",
               "scaling", "shrinkage", "pop_alpha", "min_rating", "index", "min_recall", "exact_below", "retention",
               "user_table", "user_events", "split", "tune_max_interactions", "engine", "master",
               "driver_memory")  # fmt: skip
RUN_SWITCHES = ("user_arrays", "centre", "tune", "reuse")


def _origin(name: str, default: object) -> str:
    """Where a run option comes from: its environment variable, and its default if it has one."""
    shown = "" if default is None or default == "" else f"; default: {escaped(str(default))}"
    return f"env REC_{name.upper()}{shown}"


def escaped(text: str | None) -> str:
    """A settings description as argparse help text, whose ``%`` starts a format code."""
    return (text or "").replace("%", "%%")


def add_run_parser(commands: Any, defaults: PipelineSettings) -> None:
    run_cmd = commands.add_parser("run", help="train, evaluate, index and publish a model")
    fields = PipelineSettings.model_fields
    for name in RUN_OPTIONS:
        info = fields[name]
        kind = type(getattr(defaults, name)) if getattr(defaults, name) is not None else str
        choices = getattr(info.annotation, "__args__", None) if name in ("weighting", "index", "engine") else None
        choices = OBJECTIVES if name == "split" else choices
        run_cmd.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name), choices=choices,
            help=f"{escaped(info.description)} ({_origin(name, getattr(defaults, name))})",
        )  # fmt: skip
    run_cmd.add_argument("--force", action="store_true", default=defaults.force, help=fields["force"].description)
    for flag in RUN_SWITCHES:
        run_cmd.add_argument(
            f"--{flag.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=getattr(defaults, flag),
            help=f"{escaped(fields[flag].description)} ({_origin(flag, getattr(defaults, flag))})",
        )  # fmt: skip
    run_cmd.add_argument("--json", action="store_true", help="print the summary as JSON")
    run_cmd.add_argument("--stages", action="store_true",
                         help="print each stage's start and end (seconds) on stderr, also with --json")  # fmt: skip


def run_command(args: argparse.Namespace) -> str:
    """Run the job with the flags over the environment's settings; returns the summary (or its JSON)."""
    overrides = {k: v for k, v in vars(args).items() if k not in ("command", "json", "stages")}
    settings = PipelineSettings(**overrides)
    result = run(
        settings,
        progress=progress_enabled(settings.progress) and not args.json,
        on_stage=_stage_to_stderr if args.stages else None if args.json else print_stage,
    )
    return json.dumps(result.to_dict(), indent=2) if args.json else summary(result)


def _stage_to_stderr(event: StageEvent) -> None:
    seconds = "" if event.seconds is None else f" {event.seconds:.1f} s"
    print(f"{event.stage}: {event.status}{seconds}", file=sys.stderr, flush=True)


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
