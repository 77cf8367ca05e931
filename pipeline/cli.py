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
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from pipeline.cli_run import add_run_parser, run_command
from pipeline.cli_tools import (
    COMMANDS,
    add_batch_parser,
    add_evaluate_parser,
    add_experiment_parser,
    add_generate_parser,
    add_simulate_parser,
    evaluate_command,
)
from reccore.errors import RecError
from reccore.settings import PipelineSettings


def build_parser(defaults: PipelineSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_run_parser(commands, defaults)
    add_evaluate_parser(commands, defaults)
    add_experiment_parser(commands)
    add_simulate_parser(commands)
    add_batch_parser(commands)
    add_generate_parser(commands, defaults)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        defaults = PipelineSettings()
        args = build_parser(defaults).parse_args(argv)
        if args.command == "evaluate":
            print(evaluate_command(args, defaults))
        elif args.command == "run":
            print(run_command(args))
        else:
            print(COMMANDS[args.command](args))
    except RecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return 2
    return 0
