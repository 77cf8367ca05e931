"""``make screenshot``: the README's picture of the dashboard, taken from the running demo.

With ``make demo`` running, opens the Recommendations page for one of the demo's users in headless Chromium
(scripts/browser.py, the code the browser test uses), waits until it has finished rendering, makes the viewport
as tall as the page so nothing is cut off, and saves the whole page as a 256-colour PNG.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
from browser import (
    RECOMMENDATIONS_RENDERED,
    WIDTH,
    Browser,
    BrowserError,
    find_chromium,
    fit_viewport_to_content,
    open_browser,
    wait_rendered,
    wait_until,
)
from PIL import Image  # Pillow comes with streamlit

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "img" / "dashboard.png"
MAX_BYTES = 300 * 1024  # the README loads it; a palette PNG of the page is well under this
DEMO_USER = "u0000001"  # the user the README's first calls use

# The user picker is the selectbox labelled "User (...)"; its input's value reads "u0000001 · 14 interactions".
PICKER_INPUT = """[...document.querySelectorAll('[data-testid="stSelectbox"]')]
  .find(e => (e.querySelector('label')?.textContent ?? '').startsWith('User'))?.querySelector('input')"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/screenshot.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--ui-url", default="http://127.0.0.1:8501", help="the dashboard (default: %(default)s)")
    parser.add_argument("--api-url", default="http://127.0.0.1:8000", help="its API (default: %(default)s)")
    parser.add_argument("--user", default=DEMO_USER, help="the user whose page is shown (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write (default: docs/img/dashboard.png)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ui_url, api_url = args.ui_url.rstrip("/"), args.api_url.rstrip("/")
    try:
        check_reachable(ui_url, api_url, args.user)
        with open_browser(find_chromium()) as browser:
            height = capture_page(browser, ui_url, api_url, args.user)
            png = browser.screenshot()
    except (BrowserError, ScreenshotError) as error:
        print(f"screenshot: {error}", file=sys.stderr)
        return 1
    size = save_palette_png(png, args.output)
    if size > MAX_BYTES:
        print(f"screenshot: {args.output} would be {size / 1024:.0f} KB, over {MAX_BYTES // 1024} KB: not written",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"screenshot: wrote {_shown(args.output)} ({WIDTH}×{height} px, {size / 1024:.0f} KB)")
    return 0


class ScreenshotError(Exception):
    """The demo is not reachable, or the page does not show what the picture should."""


def check_reachable(ui_url: str, api_url: str, user_id: str) -> None:
    """One clear line for each thing that must be up before Chromium starts."""
    for name, url in (("the dashboard", f"{ui_url}/_stcore/health"), ("the API", f"{api_url}/health")):
        try:
            response = httpx.get(url, timeout=5)
        except httpx.TransportError as error:
            raise ScreenshotError(f"{name} is not reachable at {url} ({error}); start it with `make demo`") from None
        if response.status_code != 200:
            raise ScreenshotError(f"{name} answered {response.status_code} at {url}; is `make demo` up?")
    if httpx.get(f"{api_url}/users/{user_id}", params={"limit": 1}, timeout=10).status_code != 200:
        raise ScreenshotError(f"the API at {api_url} does not know user {user_id}; pass --user")


def capture_page(browser: Browser, ui_url: str, api_url: str, user_id: str) -> int:
    """Show ``user_id``'s recommendations, fully rendered, in a viewport as tall as the page; returns its height."""
    browser.navigate(f"{ui_url}/Recommendations")
    wait_rendered(browser, "the recommendations page")
    picked = f"(({PICKER_INPUT})?.value ?? '').startsWith({json.dumps(user_id + ' ')})"
    if not browser.evaluate(picked):  # the page's default is the model's first user: u0000001 in the demo
        pick_user(browser, user_id)
    shows_user = f"({RECOMMENDATIONS_RENDERED} && {picked})"
    wait_rendered(browser, f"the recommendations page for {user_id}", shows_user)
    height = fit_viewport_to_content(browser, WIDTH, shows_user)
    # The sidebar's API URL is a text field: its value is not in the document's text.
    text = browser.evaluate(
        "[document.body.textContent, ...[...document.querySelectorAll('input')].map(i => i.value)].join('\\n')"
    )
    for expected in ("Act as this user", api_url):
        if expected not in text:
            raise ScreenshotError(f"the page does not show {expected!r}; see the dashboard at {ui_url}/Recommendations")
    if "Traceback" in text:
        raise ScreenshotError(f"the page shows a traceback; see the dashboard at {ui_url}/Recommendations")
    return height


def pick_user(browser: Browser, user_id: str) -> None:
    """Type ``user_id`` into the user picker and click its option, as a visitor would."""
    browser.evaluate(f"({PICKER_INPUT}).setAttribute('data-screenshot', 'user-picker')")
    browser.click('[data-screenshot="user-picker"]')
    browser.type_text(user_id)
    option = f"""[...document.querySelectorAll('[role="option"]')]
      .find(e => e.textContent.startsWith({json.dumps(user_id)}))"""
    wait_until(lambda: browser.evaluate(f"!!({option})"), 10, f"the user picker did not offer {user_id}")
    browser.evaluate(f"({option}).setAttribute('data-screenshot', 'user-option')")
    browser.click('[data-screenshot="user-option"]')
    browser.evaluate("document.activeElement.blur()")  # no focus ring in the picture


def save_palette_png(png: bytes, output: Path) -> int:
    """Write ``png`` re-encoded with a 256-colour palette (a screenshot has few colours); returns its size.
    Nothing is written if it exceeds :data:`MAX_BYTES`."""
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        image.convert("RGB").quantize(colors=256).save(buffer, format="PNG", optimize=True)
    data = buffer.getvalue()
    if len(data) <= MAX_BYTES:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(data)
    return len(data)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    sys.exit(main())
