"""Debian's chromium as every browser test, screenshot script and page benchmark starts it.

Playwright's own browser download cannot work here; the system's chromium is driven instead.
The background-networking flags keep it from reaching out to Google's hosts, which this
machine's closed network refuses, many at a time.
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


def launch(playwright, executable: str = CHROMIUM):
    """``playwright.chromium.launch`` for this chromium (sync API: the browser; async: the
    awaitable of it)."""
    return playwright.chromium.launch(executable_path=executable, args=list(ARGS))
