"""The items' 2-D latent projection, coloured by category, with one user's items highlighted."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

import ui
import widgets

ui.setup("Latent map", ":material/scatter_plot:")
st.markdown(
    "Each dot is an item placed by a 2-D projection of its latent vector; nearby items are "
    "liked by the same people. Open rings are the user's history, stars their recommendations."
)

user_id = widgets.user_picker()
sample = st.slider("Items to plot", 500, 20_000, 2_000, step=500, key="map_sample")
history = recs = None
if user_id is not None:
    history = ui.fetch("user_history", user_id=user_id, limit=50)
    options = st.session_state.get(ui.REC_OPTIONS, {"k": 10, "exclude_seen": True})
    recs = ui.fetch("recommend", user_id=user_id, **options)
highlighted = [item["item_id"] for item in (history or {}).get("history", []) + (recs or {}).get("items", [])]
# The user's items are requested explicitly, so they are plotted whatever the sample.
item_map = ui.require("item_map", sample=sample, ids=tuple(sorted(set(highlighted))))
points = {point["item_id"]: point for point in item_map["points"]}

figure = go.Figure()
categories = sorted({point["category"] for point in points.values()})
palette = qualitative.Alphabet
for index, category in enumerate(categories):
    members = [point for point in points.values() if point["category"] == category]
    figure.add_trace(
        go.Scattergl(
            x=[point["x"] for point in members],
            y=[point["y"] for point in members],
            mode="markers",
            name=category,
            marker={"size": 5, "opacity": 0.55, "color": palette[index % len(palette)]},
            text=[f"{p['title']} ({p['item_id']})" + (" (cold)" if p["content_based"] else "") for p in members],
            hovertemplate="%{text}<extra>" + category + "</extra>",
        )
    )


def highlight(items: list[dict[str, str]], name: str, symbol: str, color: str) -> None:
    """Overlay ``items`` on their plotted points."""
    shown = [item for item in items if item["item_id"] in points]
    figure.add_trace(
        go.Scattergl(
            x=[points[item["item_id"]]["x"] for item in shown],
            y=[points[item["item_id"]]["y"] for item in shown],
            mode="markers",
            name=name,
            marker={"size": 14, "symbol": symbol, "color": color, "line": {"width": 2, "color": color}},
            text=[f"{item['title']} ({item['category']})" for item in shown],
            hovertemplate="%{text}<extra>" + name + "</extra>",
        )
    )


if history is not None:
    highlight(history["history"], f"{user_id}: history", "circle-open", "black")
if recs is not None:
    highlight(recs["items"], f"{user_id}: recommended", "star", "crimson")

figure.update_layout(height=650, margin={"l": 0, "r": 0, "t": 10, "b": 0}, legend={"itemsizing": "constant"})
widgets.show_chart(figure, toolbar=True)  # zoom and pan matter on thousands of points
st.caption(f"{len(points):,} of {ui.plural(item_map['total'], 'item')} plotted.")
