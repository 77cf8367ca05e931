"""Headless Chromium driven over the DevTools protocol: the dashboard's browser test and ``make screenshot``.

A one-shot ``chromium --screenshot`` often captures Streamlit's loading skeleton, because virtual time does
not wait for the websocket. So both drive Chromium over the DevTools protocol and wait until the content
exists and the "running" widget is gone (:data:`RECOMMENDATIONS_RENDERED`, checked twice by
:func:`rendered_twice`). Needs ``websockets`` (the ``dev`` extra) and Debian's ``chromium``.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

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

# The Recommendations page has finished a run: no "running" widget, the table, the chart's ticks and the banner.
RECOMMENDATIONS_RENDERED = """(() => {
  const running = document.querySelector('[data-testid="stStatusWidget"]');
  const grid = document.querySelector('[data-testid="stDataFrame"]');
  const bars = document.querySelectorAll('.js-plotly-plot .ytick');
  return !running && !!grid && bars.length > 0 && document.body.textContent.includes('Strategy:');
})()"""

# Streamlit scrolls its main container, not the document, so the document is never taller than the viewport:
# the page's real height is the tallest scroll height of the two, plus where the main container starts.
CONTENT_HEIGHT = """(() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const inner = main ? main.getBoundingClientRect().top + window.scrollY + main.scrollHeight : 0;
  return Math.ceil(Math.max(inner, document.documentElement.scrollHeight));
})()"""


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or a page did not reach the state waited for."""


def find_chromium() -> str:
    """Debian's chromium; raises :class:`BrowserError` with the install command if it is absent."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise BrowserError("Chromium is not installed: run `apt-get install -y chromium` (the .ci/run script does).")
    return executable


def wait_until(condition: Callable[[], object], seconds: float, failure: str) -> None:
    """Poll ``condition`` every 0.25 s; raise :class:`BrowserError` with ``failure`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise BrowserError(f"{failure} (waited {seconds:g} s)")


@contextmanager
def open_browser(executable: str, width: int = WIDTH, height: int = HEIGHT) -> Iterator[Browser]:
    """Start headless Chromium with a fresh profile and yield its first page; stop every Chromium process after."""
    # Chromium's helper processes can still be writing the profile while it is removed: tolerate that.
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                executable,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so the helpers (renderer, zygote) stop with it
        )
        try:
            active_port = Path(profile) / "DevToolsActivePort"
            wait_until(
                lambda: active_port.is_file() and active_port.read_text().count("\n") >= 1,
                30,
                "Chromium did not open its DevTools port",
            )
            port = active_port.read_text().split()[0]
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            page = next(target for target in targets if target["type"] == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as connection:
                browser = Browser(connection)
                browser.set_viewport(width, height)
                yield browser
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


class Browser:
    """The few DevTools protocol commands the dashboard's checks need, over one page's websocket."""

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
                    raise BrowserError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    def evaluate(self, expression: str) -> Any:
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def set_viewport(self, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def click(self, selector: str) -> None:
        """A real mouse click at the centre of the first element matching the CSS ``selector``."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        if box is None:
            raise BrowserError(f"nothing on the page matches {selector}")
        x, y = box
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_text(self, text: str) -> None:
        """Type ``text`` into the focused element, as a paste would."""
        self.send("Input.insertText", text=text)

    def screenshot(self) -> bytes:
        """The viewport as PNG bytes."""
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])


def rendered_twice(browser: Browser, expression: str = RECOMMENDATIONS_RENDERED) -> bool:
    """``expression`` holds now and half a second later: between reruns the status widget can be briefly absent."""
    if not browser.evaluate(expression):
        return False
    time.sleep(0.5)
    return bool(browser.evaluate(expression))


def wait_rendered(browser: Browser, what: str, expression: str = RECOMMENDATIONS_RENDERED) -> None:
    """Wait up to :data:`RENDER_SECONDS` until :func:`rendered_twice` holds."""
    wait_until(lambda: rendered_twice(browser, expression), RENDER_SECONDS, f"{what} did not finish rendering")


def fit_viewport_to_content(browser: Browser, width: int, expression: str = RECOMMENDATIONS_RENDERED) -> int:
    """Make the viewport as tall as the page's content, so that a screenshot holds all of it; returns the height.

    A taller viewport reflows the page (charts resize, the sidebar stretches), so measure again after each resize
    until the height holds still.
    """
    height = 0
    for _ in range(5):
        measured = int(browser.evaluate(CONTENT_HEIGHT))
        if measured == height:
            return height
        height = measured
        browser.set_viewport(width, height)
        wait_rendered(browser, "the page after a resize", expression)
    raise BrowserError(f"the page's height did not settle (last {height} px)")
