"""Entry page: what the dashboard shows, and the health of the API behind it."""

from __future__ import annotations

import streamlit as st

import ui

health = ui.setup("Hybrid recommender", ":material/storefront:")

st.markdown(
    """
A serverless hybrid recommender: a truncated SVD of the interaction log gives every user and
item a latent vector; FAISS finds the best items for a user, and items nobody has touched yet
(cold items) are placed by their metadata. New visitors get a vector *folded in* from the items
of their session, and anyone without history gets the popular items. This dashboard talks only
to the API; it never reads the model files.
"""
)

st.subheader("Model in service")
cols = st.columns(4)
cols[0].metric("Items", f"{health['n_items']:,}")
cols[1].metric("Users", f"{health['n_users']:,}")
cols[2].metric("Latent dimensions", health["dims"])
cols[3].metric("Index", ui.index_label(health))
st.caption(
    f"Version `{health['model_version']}` · trained {ui.format_time(health['model_created_at'])} · "
    f"loaded {ui.format_time(health['loaded_at'])} · FAISS SIMD {health['faiss_simd']}"
)

st.subheader("Pages")
st.page_link(
    "pages/1_Recommendations.py", label="Recommendations: a user's history and top-k", icon=":material/recommend:"
)
st.page_link(
    "pages/2_Cold_Start.py", label="Cold start: recommendations for an anonymous session", icon=":material/ac_unit:"
)
st.page_link("pages/3_Similar_Items.py", label="Similar items: nearest neighbours by cosine", icon=":material/hub:")
st.page_link(
    "pages/4_Latent_Map.py",
    label="Latent map: the items in 2-D, with a user highlighted",
    icon=":material/scatter_plot:",
)
st.page_link(
    "pages/5_Experiments.py",
    label="Experiments: champion against challenger, CTR with its interval, the decision",
    icon=":material/science:",
)
