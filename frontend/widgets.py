"""Pieces that more than one page draws: the user picker, item search, result tables, and every plotly chart."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st

import ui
from api_client import JSON

SEARCH_LIMIT = 50
ANY_CATEGORY = "(any category)"
# Plotly's mode bar (zoom, pan, download) floats over the top right of a chart while the pointer is on it, and hid
# the first entry of a legend drawn there. A horizontal legend at the foot of the figure is out of its way; placed
# in the container (not the plot area), plotly reserves a bottom margin of the legend's height for it whatever the
# chart's height, and the axes' automargin adds the room of their tick labels and titles above it.
LEGEND_BELOW = {"orientation": "h", "x": 0, "xanchor": "left", "yref": "container", "y": 0, "yanchor": "bottom"}


def user_picker() -> str | None:
    """Search users by id and pick one; the choice is shared with the other pages."""
    search_column, select_column = st.columns([1, 2])
    query = search_column.text_input("Search users by id", key="user_query", placeholder="e.g. u0000001")
    page = ui.require("users", q=query.strip() or None, limit=SEARCH_LIMIT)
    counts = {user["user_id"]: user["n_interactions"] for user in page["users"]}
    current = st.session_state.get(ui.USER_ID)
    if current and current not in counts and not query.strip():
        counts = {current: None, **counts}  # keep a choice made on another page selectable
    typed = query.strip()
    if typed and typed not in counts:
        # A user the model's list does not hold (a new user, or a model published without per-user arrays whose
        # users live in the user-state store): still selectable by their exact id.
        counts = {typed: None, **counts}
    if not counts:
        st.info("Type a user id to look one up.")
        return None
    ids = list(counts)
    user_id = select_column.selectbox(
        user_picker_label(page["total"], typed),
        ids,
        index=ids.index(current) if current in counts else 0,
        format_func=lambda uid: uid if counts[uid] is None else f"{uid} · {ui.plural(counts[uid], 'interaction')}",
    )
    st.session_state[ui.USER_ID] = user_id
    return user_id


def user_picker_label(total: int, query: str) -> str:
    """The picker's label: how many of the model's users the search found, or what a user it lacks gets."""
    if not query:
        return f"User ({ui.plural(total, 'user')} known to the model)"
    if total == 0:
        return "User (new to the model: recommended by fold-in of their events, or popular items until there are any)"
    return f"User ({ui.plural(total, 'match', 'matches')})"


def item_search(key: str) -> list[JSON]:
    """Search the catalogue by title text and category; returns the matching items."""
    left, right = st.columns([2, 1])
    query = left.text_input("Search items by title", key=f"{key}_query", placeholder="e.g. Lamp")
    category = right.selectbox("Category", [ANY_CATEGORY, *ui.category_names()], key=f"{key}_category")
    page = ui.require(
        "items",
        q=query.strip() or None,
        category=None if category == ANY_CATEGORY else category,
        limit=SEARCH_LIMIT,
    )
    st.caption(item_search_caption(page["total"], len(page["items"])))
    return list(page["items"])


def item_search_caption(total: int, shown: int) -> str:
    """``1 item matches.``, ``12 items match.``, ``1,204 items match; showing the first 50.``"""
    if total == 0:
        return "No item matches."
    found = f"{ui.plural(total, 'item')} {'matches' if total == 1 else 'match'}"
    return f"{found}; showing the first {shown}." if shown < total else f"{found}."


def item_label(item: JSON) -> str:
    cold = " · cold" if item.get("content_based") else ""
    return f"{item['title']} ({item['category']}{cold}) [{item['item_id']}]"


def history_table(history: list[JSON]) -> None:
    rows = [
        {
            "title": entry["title"],
            "category": entry["category"],
            "when": ui.format_time(entry["timestamp"]),
            "event": entry["event"],
        }
        for entry in history
    ]
    st.dataframe(rows, hide_index=True)


def scored_table(items: list[JSON], score_label: str = "score", sources: dict[str, str] = ui.SOURCE_LABELS) -> None:
    """Ranked items: rank, title, category, score and where each came from, labelled by ``sources``."""
    rows = [
        {
            "rank": item["rank"],
            "title": item["title"],
            "category": item["category"],
            score_label: round(item["score"], 4) if item.get("score") is not None else None,
            "source": sources.get(item["source"], item["source"]),
            **({"because": because(item["because"])} if item.get("because") is not None else {}),
            "item_id": item["item_id"],
        }
        for item in items
    ]
    st.dataframe(rows, hide_index=True, column_config={"because": st.column_config.TextColumn(width="large")})


def because(reasons: list[JSON] | str) -> str:
    """An item's reasons as one line: "popular", or the history items with their share of its score."""
    if isinstance(reasons, str):
        return reasons
    return " · ".join(f"{_shorten(r['title'])} ({r['share']:.0%})" for r in reasons) or "—"


def score_chart(items: list[JSON], score_label: str = "score") -> None:
    """A small horizontal bar chart of the model's scores, best at the top (a popularity backfill has none)."""
    items = [item for item in items if item.get("score") is not None]
    if not items:
        st.caption("No model scores: these items are the most popular ones.")
        return
    labels = [f"{item['rank']}. {_shorten(item['title'])}" for item in items]
    scores = [item["score"] for item in items]
    figure = go.Figure(go.Bar(x=scores, y=labels, orientation="h"))
    low, high = min(scores), max(scores)
    if low > 0 and high > low:  # e.g. cosines all near 0.9: start near the lowest bar, not at 0
        figure.update_xaxes(range=[max(0.0, low - 0.5 * (high - low)), high + 0.05 * (high - low)])
    figure.update_layout(
        height=min(80 + 30 * len(items), 560),
        margin={"l": 0, "r": 10, "t": 10, "b": 0},
        yaxis={"autorange": "reversed"},
        xaxis_title=score_label,
    )
    show_chart(figure)


def show_chart(figure: go.Figure, toolbar: bool = False) -> None:
    """Draw any plotly figure of the dashboard: legend below the plot; ``toolbar`` keeps zoom and pan (on hover)."""
    figure.update_layout(legend=LEGEND_BELOW)
    figure.update_xaxes(automargin=True)  # without it, a margin of 0 lets the legend cover the x tick labels
    figure.update_yaxes(automargin=True)
    st.plotly_chart(figure, config={"displayModeBar": "hover" if toolbar else False, "displaylogo": False})


def _shorten(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def recommend_options(categories: list[str], key: str, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The controls k, exclude seen, diversity and include/exclude categories, as ``/recommend`` arguments."""
    defaults = defaults or {}
    left, middle = st.columns(2)
    k = left.slider("How many (k)", 1, 50, defaults.get("k", 10), key=f"{key}_k")
    exclude_seen = middle.checkbox("Exclude items already seen", defaults.get("exclude_seen", True), key=f"{key}_seen")
    include = st.multiselect("Only these categories", categories, key=f"{key}_include")
    exclude = st.multiselect("Never these categories", categories, key=f"{key}_exclude")
    diversity = st.slider(
        "Diversity (0 = plain ranking)", 0.0, 1.0, float(defaults.get("diversity", 0.0)), 0.1, key=f"{key}_diversity",
        help="Maximal marginal relevance: trades score for items less alike (cosine of their vectors).",
    )  # fmt: skip
    return {
        "k": k,
        "exclude_seen": exclude_seen,
        "include_categories": include,
        "exclude_categories": exclude,
        "diversity": diversity,
    }


def act_as_user(user_id: str, items: list[JSON]) -> None:
    """Post a view or a purchase of one of the listed items as this user; the page reruns with the new answer."""
    st.markdown("**Act as this user** · the next recommendation reflects it at once, without retraining")
    labels = {item["item_id"]: f"#{item['rank']} {item['title']} [{item['item_id']}]" for item in items}
    choice_column, view_column, buy_column = st.columns([3, 1, 1])
    item_id = choice_column.selectbox("Item", list(labels), format_func=labels.__getitem__, key="act_item")
    event = None
    if view_column.button("View", key="act_view", icon=":material/visibility:"):
        event = "view"
    if buy_column.button("Buy", key="act_buy", icon=":material/shopping_cart:"):
        event = "purchase"
    if event is not None and ui.send_events([{"user_id": user_id, "item_id": item_id, "event": event}]):
        st.rerun()
