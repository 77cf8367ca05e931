"""The dashboard's words for counts, sources and an unreachable API, checked without a page or an API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ui
import widgets

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 events"), (1, "1 event"), (2, "2 events"), (12_345, "12,345 events")],
)
def test_plural_agrees_with_the_count(count: int, expected: str) -> None:
    assert ui.plural(count, "event") == expected


def test_plural_takes_an_irregular_form() -> None:
    assert ui.plural(1, "match", "matches") == "1 match"
    assert ui.plural(3, "match", "matches") == "3 matches"


@pytest.mark.parametrize(
    ("total", "query", "expected"),
    [(1, "u1", "User (1 match)"), (7, "u1", "User (7 matches)"), (1_204, "", "User (1,204 users known to the model)")],
)
def test_the_user_picker_label_counts_matches_in_words(total: int, query: str, expected: str) -> None:
    assert widgets.user_picker_label(total, query) == expected


def test_a_user_id_that_matches_nobody_is_labelled_as_a_new_user() -> None:
    label = widgets.user_picker_label(0, "brand-new-visitor")
    assert "0 match" not in label
    assert "new to the model" in label and "fold-in" in label and "popular" in label


@pytest.mark.parametrize(
    ("total", "shown", "expected"),
    [
        (0, 0, "No item matches."),
        (1, 1, "1 item matches."),
        (12, 12, "12 items match."),
        (1_204, 50, "1,204 items match; showing the first 50."),
    ],
)
def test_the_item_search_caption_agrees_with_the_count(total: int, shown: int, expected: str) -> None:
    assert widgets.item_search_caption(total, shown) == expected


def test_under_the_popular_strategy_the_list_is_the_ranking_not_a_backfill() -> None:
    labels = ui.source_labels("popular", "pick items to personalise")
    assert labels["popular"] == "most popular (pick items to personalise)"
    assert ui.source_labels("fold_in", "pick items to personalise")["popular"] == "popular backfill"


@pytest.mark.parametrize(
    ("url", "port"),
    [("http://127.0.0.1:8010", 8010), ("http://localhost:9123/", 9123), ("http://localhost", 80)],
)
def test_the_start_hint_names_the_configured_local_url_and_its_port(url: str, port: int) -> None:
    hint = ui.start_hint(url)
    assert f"`{url}`" in hint
    assert f"make serve API_PORT={port}" in hint and f"make demo API_PORT={port}" in hint
    assert "8000" not in hint


def test_the_start_hint_for_a_deployed_api_points_at_the_stack_not_at_make_serve() -> None:
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    hint = ui.start_hint(url)
    assert f"`{url}`" in hint and "ApiUrl" in hint
    assert "make serve" not in hint


def test_the_start_hint_survives_a_url_with_an_impossible_port() -> None:
    assert "not valid" in ui.start_hint("http://127.0.0.1:99999")


def test_every_chart_is_drawn_by_the_shared_helper() -> None:
    """Only ``widgets.show_chart`` calls ``st.plotly_chart``: every chart keeps its legend clear of the toolbar."""
    callers = []
    for path in sorted(FRONTEND.rglob("*.py")):
        tree = ast.parse(path.read_text())
        functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "plotly_chart":
                around = [f for f in functions if f.lineno <= node.lineno <= (f.end_lineno or f.lineno)]
                name = min(around, key=lambda f: node.lineno - f.lineno).name if around else "<module>"
                callers.append(f"{path.relative_to(FRONTEND).as_posix()}:{name}")
    assert callers == ["widgets.py:show_chart"]
