"""``python -m pipeline run ...``: flags override the ``REC_*`` environment (see reccore.settings)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from pipeline.job import RunResult, run
from reccore.errors import RecError
from reccore.settings import PipelineSettings


def build_parser(defaults: PipelineSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="train, evaluate, index and publish a model")
    fields = PipelineSettings.model_fields
    for name in ("source", "items", "output", "interactions", "seed", "factors", "weighting", "index", "min_recall",
                 "retention"):  # fmt: skip
        info = fields[name]
        kind = type(getattr(defaults, name)) if getattr(defaults, name) is not None else str
        choices = getattr(info.annotation, "__args__", None) if name in ("weighting", "index") else None
        run_cmd.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name), choices=choices,
            help=f"{info.description} (env REC_{name.upper()}; default: %(default)s)",
        )  # fmt: skip
    run_cmd.add_argument("--force", action="store_true", default=defaults.force, help=fields["force"].description)
    run_cmd.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        defaults = PipelineSettings()
        args = build_parser(defaults).parse_args(argv)
        overrides = {k: v for k, v in vars(args).items() if k not in ("command", "json")}
        settings = PipelineSettings(**overrides)
        result = run(settings, progress=not args.json)
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
    lines = [f"published {result.version}", f"  at {result.uri}", "", "stage timings (s):"]
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
        "",
        _metrics_table(result.metrics),
    ]
    return "\n".join(lines)


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    names = [n for n in next(iter(metrics.values())) if n != "users"]
    header = f"  {'':<12}" + "".join(f"{n:>16}" for n in names)
    rows = [f"  {model:<12}" + "".join(f"{values[n]:>16.4f}" for n in names) for model, values in metrics.items()]
    return "\n".join(["evaluation (time split, newest 20% per user held out):", header, *rows])
