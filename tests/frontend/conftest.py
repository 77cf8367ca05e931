"""A live local stack for the dashboard tests: the shared moto S3 and published model (tests/conftest.py),
and uvicorn serving the real app on a free port. Nothing between the dashboard and the API is mocked.

Below it, the helpers the page tests share: a page opened with AppTest against an API, and what it shows.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from pipeline.client import free_port
from tests.conftest import PublishedModel

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
# The pages import their siblings (ui, widgets, api_client) as `streamlit run` would.
for path in (ROOT, ROOT / "functions" / "recommend", FRONTEND):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

STARTUP_SECONDS = 30.0


@pytest.fixture(scope="session")
def api_url(published_model: PublishedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app (``app.main:app``) served by uvicorn in a background thread."""
    import uvicorn

    from reccore import settings

    env = pytest.MonkeyPatch()
    env.setenv("REC_MODEL_URI", published_model.uri)
    env.setenv("REC_CACHE_DIR", str(tmp_path_factory.mktemp("model-cache")))
    settings.get_service_settings.cache_clear()
    from app.main import app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, published_model.version)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        env.undo()
        settings.get_service_settings.cache_clear()


def _wait_until_healthy(url: str, version: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=10)
            if response.status_code == 200 and response.json()["model_version"] == version:
                return
            last = response.text
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"the API at {url} did not serve model {version} within {STARTUP_SECONDS} s: {last}")


@pytest.fixture(scope="session")
def dead_api_url() -> str:
    """An address where no API listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def api(api_url: str) -> Iterator[httpx.Client]:
    """A plain HTTP client of the live API, for tests to look up expected answers."""
    with httpx.Client(base_url=api_url, timeout=10) as client:
        yield client


class _BrokenApi(BaseHTTPRequestHandler):
    """Answers every request with the status in the server's ``status`` attribute."""

    def _answer(self) -> None:
        body = json.dumps({"error": "internal", "message": "the model store is unreachable"}).encode()
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(params=[500, 503])
def broken_api_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A server that fails every call with a 500 or a 503, as a broken deployment would."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenApi)
    server.status = request.param  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent_api_url() -> Iterator[str]:
    """A port that accepts connections but never answers, so calls time out."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- driving a page with AppTest, and reading what it shows (the test_page_* modules, test_home_and_sidebar) ---


def page_path(name: str) -> str:
    """The file of a dashboard page: ``Home.py`` or ``pages/N_Title.py``."""
    return str(FRONTEND / name)


def open_page(name: str, url: str) -> AppTest:
    at = AppTest.from_file(page_path(name), default_timeout=60)
    at.secrets["api_url"] = url
    return at.run()


def texts(elements: Any) -> str:
    return "\n".join(str(element.value) for element in elements)


def ranked_table(at: AppTest) -> list[dict[str, Any]]:
    """The rows of the page's ranked-items table (the one with a ``rank`` column)."""
    tables = [frame.value for frame in at.dataframe if "rank" in frame.value.columns]
    assert len(tables) == 1, f"expected one ranked table, found {len(tables)}"
    return list(tables[0].to_dict("records"))


def charts(at: AppTest) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each plotly chart on the page as (figure, config)."""
    return [(json.loads(chart.proto.spec), json.loads(chart.proto.config)) for chart in at.get("plotly_chart")]


def assert_legend_clear_of_the_toolbar(figure: dict[str, Any], config: dict[str, Any]) -> None:
    """The legend lies flat at the foot of the figure, where plotly's toolbar (top right) cannot cover it."""
    legend = figure["layout"]["legend"]
    assert (legend["orientation"], legend["yref"], legend["y"], legend["yanchor"]) == ("h", "container", 0, "bottom")
    assert config["displayModeBar"] in (False, "hover") and config["displaylogo"] is False


def pick_user(at: AppTest, user_id: str) -> AppTest:
    at.text_input(key="user_query").set_value(user_id).run()
    at.selectbox[0].set_value(user_id).run()
    return at


def active_user(api: httpx.Client) -> str:
    """A user with plenty of history, so that personalisation is certain."""
    users = api.get("/users", params={"limit": 100}).json()["users"]
    return str(max(users, key=lambda user: user["n_interactions"])["user_id"])
