"""The online champion/challenger experiment: its split, its status, and each variant's CTR at every look."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import plotly.graph_objects as go
import streamlit as st

import ui
import widgets
from api_client import JSON

VARIANTS = ("champion", "challenger")
COLORS = {"champion": "#1f77b4", "challenger": "#ff7f0e"}
BANDS = {"champion": "rgba(31, 119, 180, 0.15)", "challenger": "rgba(255, 127, 14, 0.15)"}
BadgeColor = Literal["blue", "red", "green", "gray"]
STATUS_BADGES: dict[str, tuple[str, BadgeColor, str]] = {  # status -> (label, badge colour, icon)
    "running": ("Running", "blue", ":material/play_circle:"),
    "rollback": ("Rolled back", "red", ":material/undo:"),
    "promote": ("Promoted", "green", ":material/verified:"),
    "stopped": ("Stopped", "gray", ":material/stop_circle:"),
}
HOW_TO = """
**No experiment has been started.** An experiment serves a published model version (the *challenger*)
to a share of the users while the rest get the version in service (the *champion*, whatever `LATEST` names).

1. Start one against the model store the API serves:
   `.venv/bin/python -m pipeline experiment start --model URI --challenger VERSION --share 0.5`
2. Drive simulated users through the API (they click and buy, and every answer is logged as an impression):
   `.venv/bin/python -m pipeline simulate --api URL --users N`
3. Run the decision (it also runs on a schedule in a deployed stack): it records a look, and rolls the challenger
   back or promotes it once the sequential test decides:
   `.venv/bin/python -m pipeline experiment evaluate --model URI`
"""

ui.setup("Experiments", ":material/science:")
experiment = ui.require("experiment")["experiment"]
if experiment is None:
    st.info(HOW_TO, icon=":material/science:")
    st.stop()


def status_badge(status: str) -> None:
    label, color, icon = STATUS_BADGES.get(status, (status, "gray", ":material/help:"))
    st.badge(label, color=color, icon=icon)


def metrics_table(look: JSON) -> None:
    """One row per variant: its version, impressions, clicked, converted, CTR and the CTR's interval."""
    rows = []
    for name in VARIANTS:
        variant = look["variants"][name]
        low, high = variant["ctr_ci"]
        rows.append(
            {
                "variant": name,
                "version": variant["version"],
                "impressions": variant["impressions"],
                "clicked": variant["clicks"],
                "converted": variant["conversions"],
                "CTR": round(variant["ctr"], 4),
                "CTR interval": f"[{low:.4f}, {high:.4f}]",
            }
        )
    st.dataframe(rows, hide_index=True)


def ctr_chart(looks: list[JSON]) -> go.Figure:
    """CTR per variant at every look, each in the band of its always-valid interval."""
    times = [datetime.fromisoformat(look["at"]) for look in looks]
    figure = go.Figure()
    for name in VARIANTS:
        series: list[dict[str, Any]] = [look["variants"][name] for look in looks]
        # The interval is centred on the smoothed CTR, not the raw one, so a band (not error bars of
        # "CTR minus low") draws it without ever needing a negative bar length.
        high = go.Scatter(x=times, y=[v["ctr_ci"][1] for v in series], showlegend=False)
        low = go.Scatter(x=times, y=[v["ctr_ci"][0] for v in series], name=f"{name} interval", fill="tonexty")
        for bound in (high, low):  # the band: the low bound filled up to the high one drawn just before it
            bound.update(mode="lines", line={"width": 0}, fillcolor=BANDS[name], legendgroup=name, hoverinfo="skip")
            figure.add_trace(bound)
        figure.add_trace(
            go.Scatter(
                x=times,
                y=[v["ctr"] for v in series],
                mode="lines+markers",
                name=f"{name} ({series[-1]['version']})",
                legendgroup=name,
                line={"color": COLORS[name]},
                customdata=[[ui.plural(v["impressions"], "impression"), *v["ctr_ci"]] for v in series],
                hovertemplate="CTR %{y:.4f} [%{customdata[1]:.4f}, %{customdata[2]:.4f}]"
                "<br>%{customdata[0]}<extra>" + name + "</extra>",
            )
        )
    figure.update_layout(
        height=420,
        margin={"l": 0, "r": 10, "t": 10, "b": 0},
        xaxis_title="look time",
        yaxis_title="CTR",
        yaxis={"tickformat": ".1%"},  # autorange: the differences matter, not the distance from 0
    )
    return figure


st.subheader(f"Experiment `{experiment['id']}`")
status_badge(experiment["status"])
cols = st.columns(3)
cols[0].metric(
    "Challenger share",
    f"{experiment['share']:.0%}",
    help="Of users (or sessions), sticky. Set to 0 when the challenger is rolled back or the experiment stopped.",
)
cols[1].markdown(f"**Champion** (LATEST at the start)  \n`{experiment['champion']}`")
cols[2].markdown(f"**Challenger**  \n`{experiment['challenger']}`")
st.caption(f"Started {ui.format_time(experiment['started_at'])}")

looks: list[JSON] = experiment["looks"]
if not looks:
    st.info(
        "The decision job has not run yet: no look to show. "
        "Run `.venv/bin/python -m pipeline experiment evaluate --model URI` (scheduled in a deployed stack).",
        icon=":material/hourglass_empty:",
    )
    st.stop()

latest = looks[-1]
st.subheader("Latest look")
st.caption(f"{ui.format_time(latest['at'])} · look {len(looks)} · the intervals hold at every look at once")
metrics_table(latest)
text = f"**Decision: `{latest['decision']}`** · {latest['reason']}"
if latest["decision"] == "promote":
    st.success(text, icon=":material/verified:")
elif latest["decision"] == "rollback":
    st.warning(text, icon=":material/undo:")  # a decision, not a failure of the page
else:
    st.info(text, icon=":material/hourglass_top:")
if experiment["status"] == "stopped":
    st.warning("Stopped by hand: every user is back on the champion; LATEST unchanged.", icon=":material/stop_circle:")

st.subheader("CTR at each look")
widgets.show_chart(ctr_chart(looks))
