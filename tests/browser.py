"""Open a page in Debian's headless chromium (via Playwright) and say what went wrong on it.

Never downloads a browser build: it drives /usr/bin/chromium (``apt-get install chromium``);
without it, the calling test fails with that instruction rather than skipping.

One-shot use::

    check = check_page(tmp_path / "report.html", screenshot=tmp_path / "report.png")
    assert check.ok, check.problems()

Pages that change while you watch them (a live page)::

    with chromium() as browser:
        page, log = new_page(browser)
        page.goto(url)
        page.wait_for_selector(".window.done")
        check = inspect(page, log, screenshot=tmp_path / "live.png")

``PageCheck`` holds console errors (and uncaught exceptions), failed requests (HTTP status >= 400
included), every URL requested, ``<img>`` elements that did not decode (naturalWidth 0),
``<video>`` elements that failed or have no metadata (readyState < 1), and H.264 videos that
fail in a chromium without H.264 (kept apart: a chromium build may leave the codec out, which is
not the page's fault).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("FRAMEPACK_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MEDIA_ERR_SRC_NOT_SUPPORTED = 4

# Every <img> and <video> with its state; a video counts as settled once it has metadata
# or has failed.
_MEDIA_STATE = """() => ({
  images: [...document.images].map(i => ({src: i.currentSrc || i.src, complete: i.complete,
                                          width: i.naturalWidth})),
  videos: [...document.querySelectorAll('video')].map(v => ({
    src: v.currentSrc || v.src, ready: v.readyState,
    error: v.error ? v.error.code : null, message: v.error ? v.error.message : ''})),
  h264: document.createElement('video').canPlayType('video/mp4; codecs="avc1.42E01E"') !== '',
})"""
H264_SUFFIXES = (".mp4", ".mov", ".m4v")
_SETTLED = """() => [...document.images].every(i => i.complete) &&
  [...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error)"""


@dataclass
class PageLog:
    """What a page reported while open: filled by listeners from ``new_page``."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


@dataclass
class PageCheck:
    console_errors: list[str]
    failed_requests: list[str]
    requests: list[str]  # every URL asked for (data: URIs included): check for the network
    broken_images: list[str]  # src of each <img> with naturalWidth 0
    broken_videos: list[str]  # "src: why" for each <video> with an error or no metadata
    unsupported_videos: list[str]  # .mp4/.mov videos that fail because chromium lacks H.264
    images: int
    videos: int
    screenshot: Path | None

    @property
    def ok(self) -> bool:
        """Nothing broken. Unsupported codecs do not count (see the module's note)."""
        return not (self.console_errors or self.failed_requests or self.broken_images
                    or self.broken_videos)

    def problems(self) -> str:
        """A readable list of what is wrong, for assertion messages."""
        lines = [f"console error: {e}" for e in self.console_errors]
        lines += [f"failed request: {r}" for r in self.failed_requests]
        lines += [f"image did not load: {_short(s)}" for s in self.broken_images]
        lines += [f"video did not load: {_short(s)}" for s in self.broken_videos]
        return "\n".join(lines) or "no problems"


def require_chromium() -> Path:
    """The chromium binary, or a failed test saying how to install it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's chromium "
                    "(apt-get install chromium); no browser build is downloaded",
                    pytrace=False)
    if importlib.util.find_spec("playwright") is None:
        pytest.fail("the browser tests need the playwright package (pip install playwright); "
                    "it drives the system chromium", pytrace=False)
    return CHROMIUM


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless chromium for the length of the block."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser, *, width: int = 1280, height: int = 800
             ) -> tuple[Page, PageLog]:
    """A page whose console errors and failed requests are collected into the returned log."""
    page = browser.new_page(viewport={"width": width, "height": height})
    log = PageLog()
    page.on("console", lambda m: m.type == "error" and log.console_errors.append(m.text))
    page.on("pageerror", lambda e: log.console_errors.append(f"uncaught: {e}"))
    page.on("request", lambda r: log.requests.append(r.url))
    page.on("requestfailed", lambda r: _failed(log, r))
    page.on("response", lambda r: r.status >= 400 and log.failed_requests.append(
        f"{r.url} (HTTP {r.status})"))
    return page, log


def _failed(log: PageLog, request: object) -> None:
    # A media element stops its own download once it has what it wants (preload=metadata);
    # chromium reports that as ERR_ABORTED. Whether the video loaded is checked on the element.
    reason = request.failure or ""
    if request.resource_type == "media" and "ERR_ABORTED" in reason:
        return
    log.failed_requests.append(f"{_short(request.url)} ({reason})")


def inspect(page: Page, log: PageLog, *, screenshot: Path | None = None,
            timeout_ms: float = 10_000) -> PageCheck:
    """Wait (up to ``timeout_ms``) for images and videos to settle, then check them; save a
    full-page screenshot to ``screenshot`` when given."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with suppress(PlaywrightTimeout):  # what is still loading then is reported below
        page.wait_for_function(_SETTLED, timeout=timeout_ms)
    state = page.evaluate(_MEDIA_STATE)
    broken_images = [i["src"] for i in state["images"] if not i["complete"] or i["width"] == 0]
    unsupported = [v["src"] for v in state["videos"] if not state["h264"]
                   and v["error"] == MEDIA_ERR_SRC_NOT_SUPPORTED
                   and v["src"].lower().endswith(H264_SUFFIXES)]
    broken_videos = [f"{v['src']}: " + (f"error {v['error']} {v['message']}".strip()
                                        if v["error"] else f"readyState {v['ready']}")
                     for v in state["videos"] if v["src"] not in unsupported
                     and (v["error"] or v["ready"] < 1)]
    if screenshot is not None:
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    return PageCheck(list(log.console_errors), list(log.failed_requests), list(log.requests),
                     broken_images, broken_videos, unsupported, len(state["images"]),
                     len(state["videos"]), Path(screenshot) if screenshot is not None else None)


def check_page(target: str | Path, *, screenshot: Path | None = None, width: int = 1280,
               height: int = 800, timeout_ms: float = 10_000) -> PageCheck:
    """Open ``target`` (a file path or a URL) in a fresh headless chromium and check it."""
    url = Path(target).resolve().as_uri() if isinstance(target, Path) or "://" not in str(
        target) else str(target)
    with chromium() as browser:
        page, log = new_page(browser, width=width, height=height)
        page.goto(url, wait_until="load")
        return inspect(page, log, screenshot=screenshot, timeout_ms=timeout_ms)


def _short(text: str, limit: int = 120) -> str:
    """Data URIs shortened so an assertion message stays readable."""
    return text if len(text) <= limit else text[:limit] + "…"
