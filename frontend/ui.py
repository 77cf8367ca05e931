"""What every page shares: the sidebar (API URL, health, last call), cached API calls, errors.

Pages call ``setup`` first, then ``require``/``fetch`` for data. An ``ApiError`` becomes
an ``st.error`` with the client's message; nothing reaches the user as a traceback.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import streamlit as st

from api_client import JSON, ApiClient, ApiError
from api_settings import api_timeout, default_api_url, request_auth

CACHE_TTL_SECONDS = 30
Method = Literal[
    "health", "recommend", "items", "item", "similar", "item_map", "categories", "users", "user_history", "experiment"
]

# Session-state keys. Values the pages share live under plain keys that no widget owns,
# because Streamlit drops a widget's state when a page without that widget runs.
API_URL = "api_url"
LAST_CALL_SLOT = "_last_call_slot"
USER_ID = "user_id"
REC_OPTIONS = "rec_options"

STRATEGY_LABELS = {
    "personalized": "Personalized: scored with the user's own latent vector.",
    "fold_in": "Fold-in: a latent vector computed on the fly from the session's items.",
    "popular": "Popular fallback: no usable history, so these are the most popular items.",
}
SOURCE_LABELS = {"model": "model", "content": "content (cold item)", "popular": "popular backfill"}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


@st.cache_resource(show_spinner=False)
def _client(base_url: str, timeout: float) -> ApiClient:
    # One signer per client: it resolves the AWS credentials once and botocore refreshes them.
    return ApiClient(base_url, timeout, auth=request_auth())


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=512)
def _cached_call(base_url: str, timeout: float, method: Method, **kwargs: Any) -> tuple[JSON, float]:
    start = time.perf_counter()
    data = getattr(_client(base_url, timeout), method)(**kwargs)
    return data, (time.perf_counter() - start) * 1000


def api_url() -> str:
    """The base URL in use: the sidebar's value, first seeded from secrets or ``REC_API_URL``."""
    if API_URL not in st.session_state:
        st.session_state[API_URL] = default_api_url()
    return str(st.session_state[API_URL])


def fetch(method: Method, **kwargs: Any) -> JSON | None:
    """Call the API through a 30 s cache; on failure show the error and return None."""
    try:
        return call(method, **kwargs)
    except ApiError as error:
        show_error(error)
        return None


def require(method: Method, **kwargs: Any) -> JSON:
    """Like ``fetch``, but a page that cannot go on without the data stops there."""
    data = fetch(method, **kwargs)
    if data is None:
        st.stop()
    return data


def call(method: Method, **kwargs: Any) -> JSON:
    """Call the API through the cache; raises ``ApiError``. Records the latency in the sidebar."""
    start = time.perf_counter()
    data, elapsed_ms = _cached_call(api_url(), api_timeout(), method, **kwargs)
    # A cache hit returns the original call's latency almost instantly.
    cached = (time.perf_counter() - start) * 1000 < elapsed_ms / 2
    slot = st.session_state.get(LAST_CALL_SLOT)
    if slot is not None:
        slot.caption(f"Last API call: `{method}` · {elapsed_ms:.0f} ms" + (" (cached)" if cached else ""))
    return data


def send_events(events: list[JSON]) -> JSON | None:
    """POST events (never cached), then drop cached results so every page shows their effect at once."""
    try:
        result = _client(api_url(), api_timeout()).post_events(events)
    except ApiError as error:
        show_error(error)
        return None
    _cached_call.clear()
    return result


def realtime_banner(recs: JSON) -> None:
    """Say when events posted since the model was trained shaped the answer, or when the store was down."""
    if recs.get("degraded"):
        st.warning("User-state store unreachable: answered from the trained model only.", icon=":material/cloud_off:")
    elif recs.get("realtime_events"):
        st.success(
            f"**Real-time:** folded in {plural(recs['realtime_events'], 'event')} posted since the model was "
            "trained (no retraining).",
            icon=":material/bolt:",
        )


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``count`` with its noun, e.g. ``1 event``, ``2 events``, ``1,204 matches`` (with ``plural_form``)."""
    noun = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {noun}"


def source_labels(strategy: str, personalise_hint: str) -> dict[str, str]:
    """Labels for the items' ``source``; under the popular strategy the list is the popularity ranking itself,
    not a backfill of a shorter model list, and the hint says how to get a personal one."""
    if strategy != "popular":
        return SOURCE_LABELS
    return {**SOURCE_LABELS, "popular": f"most popular ({personalise_hint})"}


def start_hint(url: str) -> str:
    """What to check when the API at ``url`` does not answer: the URL itself, and how to start an API there."""
    parts = urlsplit(url)
    where = f"The dashboard calls the API at `{url}` (the API URL in the sidebar, first set by `REC_API_URL`)."
    if parts.hostname in LOCAL_HOSTS:
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:  # e.g. a port beyond 65535: only the URL can be fixed
            return f"{where} Its port is not valid: correct the URL."
        return (
            f"{where} To start one there: `make serve API_PORT={port}` serves a published model, "
            f"`make demo API_PORT={port}` runs the whole local stack."
        )
    return f"{where} For a deployed stack, use its `ApiUrl` output (`make deploy` prints it)."


def show_error(error: ApiError) -> None:
    status = f" (HTTP {error.status})" if error.status else ""
    st.error(f"{error.message}{status}", icon=":material/error:")


def setup(title: str, icon: str) -> JSON:
    """Configure the page, draw the sidebar, and return ``/health``; stops the page if the API is unusable."""
    st.set_page_config(page_title=f"{title} · Recommender", page_icon=icon, layout="wide")
    st.title(f"{icon} {title}")
    with st.sidebar:
        _api_url_input()
        health_box = st.container()
        st.session_state[LAST_CALL_SLOT] = st.empty()
    try:
        health = call("health")
    except ApiError as error:
        health_box.error("API unavailable")
        show_error(error)
        st.info(start_hint(api_url()))
        st.stop()
    with health_box:
        _health_summary(health)
    return health


def _api_url_input() -> None:
    current = api_url()
    edited = st.text_input("API URL", value=current, help="Set by `REC_API_URL` or `st.secrets['api_url']`.")
    if edited.strip() and edited.strip() != current:
        st.session_state[API_URL] = edited.strip()
    if st.button("Refresh data", help=f"API results are cached for {CACHE_TTL_SECONDS} s."):
        _cached_call.clear()


def _health_summary(health: JSON) -> None:
    st.success("API healthy", icon=":material/check_circle:")
    st.markdown(f"**Model** `{health['model_version']}`")
    left, right = st.columns(2)
    left.metric("Items", f"{health['n_items']:,}")
    right.metric("Users", f"{health['n_users']:,}")
    st.caption(f"Loaded {format_time(health['loaded_at'])} · index {index_label(health)}, {health['dims']} dims")


def index_label(health: JSON) -> str:
    """The index type with its measured recall@10, e.g. ``ivf (recall@10 0.962)``; ``flat (exact)``."""
    recall = health.get("index_recall_at_10")
    return f"{health['index_type']} (exact)" if recall is None else f"{health['index_type']} (recall@10 {recall:.3f})"


def format_time(value: str) -> str:
    """An API timestamp (ISO 8601) as ``YYYY-MM-DD HH:MM UTC``."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def category_names() -> list[str]:
    data = fetch("categories")
    return [category["name"] for category in data["categories"]] if data else []


def strategy_banner(strategy: str) -> None:
    """The strategy the API used, labelled so that a fallback is never mistaken for personalisation."""
    text = f"**Strategy: `{strategy}`** · {STRATEGY_LABELS.get(strategy, '')}"
    if strategy == "popular":
        st.warning(text, icon=":material/trending_up:")
    else:
        st.info(text, icon=":material/recommend:")
