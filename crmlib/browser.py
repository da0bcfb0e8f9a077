"""Open a report in headless Chromium (Debian's `chromium`): check that it draws, print it to PDF.

Playwright drives the system browser (no browser download). Every request that is not a local file is
blocked, so a report that still draws here draws offline.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str | None:
    for name in (os.environ.get("CRM_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


@contextmanager
def _page() -> Iterator:
    exe = chromium_path()
    if not exe:
        raise UserError("headless Chromium not found",
                        hint="install Debian's chromium and fonts-noto-cjk (apt-get install chromium fonts-noto-cjk)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            yield page
        finally:
            browser.close()


@dataclass
class BrowserCheck:
    charts: int = 0
    charts_drawn: int = 0
    console_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    text_sample: str = ""

    @property
    def ok(self) -> bool:
        return self.charts_drawn == self.charts and not self.console_errors


_COUNT_CHARTS = """() => {
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  const drawn = plots.filter(p => p.querySelector('svg.main-svg') && p.getBoundingClientRect().height > 0);
  return [plots.length, drawn.length];
}"""


def check_report(html: Path, screenshot: Path | None = None, timeout_ms: int = 20000) -> BrowserCheck:
    """Load ``html`` offline; count plotly charts and the ones that drew; collect console errors."""
    result = BrowserCheck()
    with _page() as page:
        def on_console(msg):
            if msg.type == "error":
                result.console_errors.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: result.console_errors.append(str(exc)))

        def route(r):
            if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
                r.continue_()
            else:
                result.blocked_requests.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(Path(html).resolve().as_uri(), wait_until="load", timeout=timeout_ms)
        try:
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                ".every(p => p.querySelector('svg.main-svg'))", timeout=timeout_ms)
        except Exception:
            pass  # counted below: undrawn charts show up as charts_drawn < charts
        result.charts, result.charts_drawn = page.evaluate(_COUNT_CHARTS)
        result.text_sample = page.inner_text("body")[:2000]
        if screenshot:
            page.screenshot(path=str(screenshot), full_page=True)
    return result


def print_pdf(html: Path, pdf: Path) -> Path:
    """Print the report as the browser would (A4, backgrounds on)."""
    with _page() as page:
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:"))
                   else r.abort())
        page.goto(Path(html).resolve().as_uri(), wait_until="load")
        page.wait_for_timeout(500)
        page.emulate_media(media="print")
        page.pdf(path=str(pdf), format="A4", print_background=True,
                 margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"})
    return pdf
