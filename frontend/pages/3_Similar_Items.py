"""An item's nearest neighbours by cosine similarity."""

from __future__ import annotations

import streamlit as st

import ui
import widgets

ui.setup("Similar items", ":material/hub:")

found = {item["item_id"]: item for item in widgets.item_search(key="similar")}
if not found:
    st.info("No item matches this search.")
    st.stop()
item_id = st.selectbox("Item", list(found), key="similar_item", format_func=lambda i: widgets.item_label(found[i]))
k = st.slider("How many neighbours", 1, 50, 10, key="similar_k")

detail = ui.fetch("item", item_id=item_id)
if detail is not None:
    cols = st.columns(4)
    cols[0].metric("Category", detail["category"])
    cols[1].metric("Price", f"{detail['price']:.2f}")
    cols[2].metric("Interactions", f"{detail['n_interactions']:,}")
    cols[3].metric("Popularity rank", f"{detail['popularity_rank']:,}")

similar = ui.require("similar", item_id=item_id, k=k)
if similar["content_based"]:
    st.warning(
        "Cold item: nobody has interacted with it yet, so its neighbours come from its "
        "content (metadata) vector, not from collaborative signal.",
        icon=":material/ac_unit:",
    )
else:
    st.info("Neighbours by cosine similarity of the items' latent vectors.", icon=":material/hub:")
widgets.scored_table(similar["items"], score_label="cosine")
widgets.score_chart(similar["items"], score_label="cosine")
