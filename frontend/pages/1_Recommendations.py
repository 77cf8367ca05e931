"""A known user's recent history and top-k recommendations, with filters."""

from __future__ import annotations

import streamlit as st

import ui
import widgets
from api_client import ApiError

ui.setup("Recommendations", ":material/recommend:")

user_id = widgets.user_picker()
if user_id is None:
    st.stop()

with st.expander("Options: k, seen items, categories"):
    options = widgets.recommend_options(ui.category_names(), key="recs")
st.session_state[ui.REC_OPTIONS] = options  # the latent map highlights the same recommendations

st.subheader("Recommendations")
recs = ui.require("recommend", user_id=user_id, explain=True, **options)
ui.strategy_banner(recs["strategy"])
ui.realtime_banner(recs)
if not recs["items"]:
    st.warning("Nothing matches these filters.")
else:
    # The table takes the page's width: the reasons ("because") need it.
    widgets.scored_table(recs["items"], sources=ui.source_labels(recs["strategy"], "view or buy one to personalise"))
    st.caption("because: the history items this item's score comes from, with their share of it (exact).")
    widgets.score_chart(recs["items"])
    widgets.act_as_user(user_id, recs["items"])

try:
    history = ui.call("user_history", user_id=user_id, limit=20)
except ApiError as error:
    if error.status != 404:
        ui.show_error(error)
    else:
        st.caption("No history yet: the model and the user-state store know nothing of this user.")
else:
    st.subheader(f"Recent history ({ui.plural(history['n_interactions'], 'interaction')} in total)")
    widgets.history_table(history["history"])
