"""One real-browser test: `streamlit run` against the live API, rendered by headless Chromium.

A one-shot ``chromium --screenshot`` often captures Streamlit's loading skeleton, because
virtual time does not wait for the websocket. So the test drives Chromium over the
DevTools protocol and waits until the content exists and the "running" widget is gone.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
WIDTH, HEIGHT = 1280, 900
RENDER_SECONDS = 60.0
OUTPUT = ROOT / "test-output" / "frontend"
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "dashboard.png"
MAX_DOCS_BYTES = 300 * 1024


@pytest.fixture(scope="module")
def dashboard_url(api_url: str) -> Iterator[str]:
    """`streamlit run` of the dashboard, configured only through the environment like a deployment."""
    port = free_port()
    env = {**os.environ, "REC_API_URL": api_url}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "Home.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    OUTPUT.mkdir(parents=True, exist_ok=True)
    log = (OUTPUT / "streamlit.log").open("w")
    # cwd=frontend so that frontend/.streamlit/config.toml applies, as in `make demo`.
    process = subprocess.Popen(command, cwd=ROOT / "frontend", env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _get_ok(f"{url}/_stcore/health"), 30, f"streamlit did not start; see {log.name}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def find_chromium() -> str:
    """Debian's chromium; its absence fails the test (CI installs it), it never skips."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("Chromium is not installed: run `apt-get install -y chromium` (the .ci/run script does).")
    return executable


@contextmanager
def open_browser(executable: str) -> Iterator[Browser]:
    # Chromium's helper processes can still be writing the profile while it is removed: tolerate that.
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                executable,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={WIDTH},{HEIGHT}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so the helpers (renderer, zygote) stop with it
        )
        try:
            active_port = Path(profile) / "DevToolsActivePort"
            _wait_for(
                lambda: active_port.is_file() and active_port.read_text().count("\n") >= 1,
                30,
                "Chromium did not open its DevTools port",
            )
            port = active_port.read_text().split()[0]
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            page = next(target for target in targets if target["type"] == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as connection:
                yield Browser(connection)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


class Browser:
    """The few DevTools protocol commands this test needs, over one page's websocket."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        self.connection.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:  # events arrive interleaved with replies; skip them
            reply = json.loads(self.connection.recv(timeout=30))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    def evaluate(self, expression: str) -> Any:
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


RENDERED = """(() => {
  const running = document.querySelector('[data-testid="stStatusWidget"]');
  const grid = document.querySelector('[data-testid="stDataFrame"]');
  const bars = document.querySelectorAll('.js-plotly-plot .ytick');
  return !running && !!grid && bars.length > 0 && document.body.textContent.includes('Strategy:');
})()"""


@pytest.mark.slow
def test_the_dashboard_renders_recommendations_in_a_real_browser(dashboard_url: str, api: httpx.Client) -> None:
    with open_browser(find_chromium()) as browser:
        _check_recommendations_page(browser, dashboard_url, api)


def _check_recommendations_page(browser: Browser, dashboard_url: str, api: httpx.Client) -> None:
    user_id = api.get("/users", params={"limit": 50}).json()["users"][0]["user_id"]  # the page's default
    expected = api.post("/recommend", json={"user_id": user_id, "k": 10}).json()["items"]

    browser.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
    browser.send("Page.navigate", url=f"{dashboard_url}/Recommendations")
    _wait_for(lambda: _rendered_twice(browser), RENDER_SECONDS, "the recommendations page did not finish rendering")

    text = browser.evaluate("document.body.textContent")
    assert "Strategy: personalized" in text
    assert "Traceback" not in text
    missing = [item["title"] for item in expected if item["title"] not in text]
    assert not missing, f"recommended titles absent from the DOM: {missing}"

    png = base64.b64decode(browser.send("Page.captureScreenshot", format="png")["data"])
    assert png.startswith(b"\x89PNG")
    screenshot = OUTPUT / "recommendations.png"
    screenshot.write_bytes(png)
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        _save_docs_screenshot(screenshot)


def _rendered_twice(browser: Browser) -> bool:
    # Twice, half a second apart: between reruns the status widget can be briefly absent.
    if not browser.evaluate(RENDERED):
        return False
    time.sleep(0.5)
    return bool(browser.evaluate(RENDERED))


def _save_docs_screenshot(source: Path) -> None:
    """Copy the screenshot for the README, re-encoded with a palette to stay small."""
    from PIL import Image  # Pillow comes with streamlit

    DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=256).save(DOCS_SCREENSHOT, optimize=True)
    size = DOCS_SCREENSHOT.stat().st_size
    assert size < MAX_DOCS_BYTES, f"{DOCS_SCREENSHOT} is {size} bytes, over {MAX_DOCS_BYTES}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _wait_for(condition: Any, seconds: float, failure: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"{failure} (waited {seconds:g} s)")
