"""An anonymous session: pick a few items and see what fold-in recommends."""

from __future__ import annotations

import streamlit as st

import ui
import widgets

BASKET = "cold_basket"  # item_id -> label; survives searches that no longer list the items

ui.setup("Cold start", ":material/ac_unit:")
st.markdown(
    "Choose a few items as the session of a visitor the model has never seen. The API folds "
    "them into a latent vector without retraining; an empty session gets the popular items."
)

if BASKET not in st.session_state:
    st.session_state[BASKET] = {}
basket: dict[str, str] = st.session_state[BASKET]

found = {item["item_id"]: widgets.item_label(item) for item in widgets.item_search(key="cold")}
labels = {**found, **basket}
if "cold_items" not in st.session_state:  # the widget's state is dropped when another page runs
    st.session_state["cold_items"] = list(basket)
chosen = st.multiselect(
    "Session items",
    list(labels),
    key="cold_items",
    format_func=labels.__getitem__,
    placeholder="Pick items from the search results",
)
st.session_state[BASKET] = {item_id: labels[item_id] for item_id in chosen}
k = st.slider("How many (k)", 1, 50, 10, key="cold_k")

recs = ui.require("recommend", recent_items=chosen or None, k=k, explain=True)
st.subheader("Recommendations for this session" if chosen else "Recommendations for an empty session")
ui.strategy_banner(recs["strategy"])
if recs["unknown_items"]:
    st.warning(f"Not in the catalogue, ignored: {', '.join(recs['unknown_items'])}")
widgets.scored_table(recs["items"], sources=ui.source_labels(recs["strategy"], "pick items to personalise"))
widgets.score_chart(recs["items"])
