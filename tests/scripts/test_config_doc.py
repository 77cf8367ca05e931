"""The configuration page's table is the settings classes, every variable once."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_doc import PAGE, READERS, main, page_block, render, rows

from reccore.settings import env_name


def test_the_page_is_in_step_with_the_settings() -> None:
    assert page_block(PAGE.read_text()) == render(), "run: python scripts/config_doc.py --write"
    assert main(["--check"]) == 0


def test_every_variable_has_one_row_with_its_default_and_meaning() -> None:
    table = {variable: (default, readers, meaning) for variable, default, readers, meaning in rows()}
    fields = {
        f"`{info.validation_alias if isinstance(info.validation_alias, str) else env_name(name)}`"
        for settings in READERS
        for name, info in settings.model_fields.items()
    }
    assert set(table) == fields and len(rows()) == len(fields)
    assert all(meaning for _, _, meaning in table.values())  # no setting without a description
    assert table["`REC_USER_TABLE`"][1] == "API, pipeline"  # read by both: one row
    assert table["`REC_FACTORS`"][0] == "`50`" and table["`REC_ITEMS`"][0] == "unset"
    assert "`bm25`" in table["`REC_WEIGHTING`"][2]  # a Literal's choices are listed


def test_a_stale_page_fails_the_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(PAGE.read_text().replace("`REC_FACTORS` | `50`", "`REC_FACTORS` | `40`"))
    monkeypatch.setattr("config_doc.PAGE", stale)
    assert main(["--check"]) == 1
    assert main(["--write"]) == 0 and page_block(stale.read_text()) == render()
