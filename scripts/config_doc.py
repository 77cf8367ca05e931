"""The configuration page's table (docs/configuration.md), generated from ``reccore.settings``.

The settings classes are the one place each variable is defined: its name, default, bounds and meaning.
``python scripts/config_doc.py --write`` rewrites the block between the markers; ``--check`` (and the test
``tests/scripts/test_config_doc.py``) fails when the page and the settings disagree.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args, get_origin

from doc_block import block
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from reccore.settings import BatchSettings, FrontendSettings, PipelineSettings, ServiceSettings, env_name

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
BEGIN = "<!-- settings:begin: generated from reccore/settings.py by scripts/config_doc.py --write; do not edit -->"
END = "<!-- settings:end -->"
# Who reads each class's variables; a field may name its own readers (json_schema_extra={"used_by": ...}).
READERS: dict[type[BaseSettings], str] = {
    ServiceSettings: "API",
    PipelineSettings: "pipeline",
    BatchSettings: "batch",
    FrontendSettings: "frontend",
}


def _default(info: FieldInfo) -> str:
    value = info.default
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _choices(info: FieldInfo) -> str:
    """ " One of: `a`, `b`." for a Literal setting (optional or not), else ""."""
    for option in (info.annotation, *get_args(info.annotation)):
        if get_origin(option) is Literal:
            return " One of: " + ", ".join(f"`{value}`" for value in get_args(option)) + "."
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a bar would end the table cell


def _variable(name: str, info: FieldInfo) -> str:
    return info.validation_alias if isinstance(info.validation_alias, str) else env_name(name)


def rows() -> list[tuple[str, str, str, str]]:
    """(variable, default, readers, meaning) per variable; one row for a variable several classes read."""
    table: dict[str, list[str]] = {}
    for settings, reader in READERS.items():
        for name, info in settings.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            used_by, meaning = str(extra.get("used_by", reader)), _cell((info.description or "") + _choices(info))
            variable = _variable(name, info)
            if variable in table:  # the same variable, read by another part: one row, each meaning once
                row = table[variable]
                row[2] += f", {used_by}"
                if meaning != row[3]:
                    row[3] += f" {used_by.capitalize()}: {meaning}"
            else:
                table[variable] = [f"`{variable}`", _default(info), used_by, meaning]
    return [(v, d, u, m) for v, d, u, m in table.values()]


def render() -> str:
    lines = [BEGIN, "| variable | default | read by | meaning |", "|---|---|---|---|"]
    lines += [f"| {variable} | {default} | {readers} | {meaning} |" for variable, default, readers, meaning in rows()]
    return "\n".join([*lines, END])


def page_block(text: str) -> str:
    """The generated block of the page, markers included; ValueError if the markers are missing."""
    return block(text, BEGIN, END)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the block in docs/configuration.md")
    action.add_argument("--check", action="store_true", help="exit 1 if the page differs from the settings")
    args = parser.parse_args(argv)
    text, table = PAGE.read_text(), render()
    if args.write:
        PAGE.write_text(text.replace(page_block(text), table))
    elif args.check and page_block(text) != table:
        print(f"{PAGE} is out of date: run .venv/bin/python scripts/config_doc.py --write", file=sys.stderr)
        return 1
    elif not args.check:
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
