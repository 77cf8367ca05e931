"""One real-browser test: `streamlit run` against the live API, rendered by headless Chromium.

The browser is driven over the DevTools protocol by scripts/browser.py, the same code that makes the
README's screenshot from the demo (``make screenshot``); this test only asserts on what it renders.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import Browser, find_chromium, open_browser, wait_rendered, wait_until

from pipeline.client import free_port

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "frontend"


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
        wait_until(lambda: _get_ok(f"{url}/_stcore/health"), 30, f"streamlit did not start; see {log.name}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.mark.slow
def test_the_dashboard_renders_recommendations_in_a_real_browser(dashboard_url: str, api: httpx.Client) -> None:
    with open_browser(find_chromium()) as browser:
        _check_recommendations_page(browser, dashboard_url, api)


def _check_recommendations_page(browser: Browser, dashboard_url: str, api: httpx.Client) -> None:
    user_id = api.get("/users", params={"limit": 50}).json()["users"][0]["user_id"]  # the page's default
    expected = api.post("/recommend", json={"user_id": user_id, "k": 10}).json()["items"]

    browser.navigate(f"{dashboard_url}/Recommendations")
    wait_rendered(browser, "the recommendations page")

    text = browser.evaluate("document.body.textContent")
    assert "Strategy: personalized" in text
    assert "Traceback" not in text
    missing = [item["title"] for item in expected if item["title"] not in text]
    assert not missing, f"recommended titles absent from the DOM: {missing}"

    png = browser.screenshot()
    assert png.startswith(b"\x89PNG")
    # For a look when the test fails; the README's image comes from the demo (make screenshot), not this test model.
    (OUTPUT / "recommendations.png").write_bytes(png)


def _get_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
