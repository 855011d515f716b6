"""What the screenshot scripts share: their options, the sizes, the login and the contexts.

Each script (``screenshots.py``, ``screenshots_admin.py``, ``screenshots_board.py``) runs a
real ``callcenter serve`` (``tests.e2e.desk_stack.DeskStack``) and headless Debian chromium
(Playwright) against it, and writes PNGs into ``docs/screenshots/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.desk_stack import PASSWORD  # noqa: E402

#: file-name suffix -> viewport: a laptop, and (``--both``) a monitor
SIZES = {"": (1366, 768), "-1080": (1920, 1080)}
LANGS = ("ru", "en")


def options(doc: str, *, both: bool = True) -> tuple[argparse.Namespace, Path, dict]:
    """Parse the scripts' common options; return them, the output folder (made) and the sizes."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    if both:
        ap.add_argument("--both", action="store_true", help="also 1920x1080 copies")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = SIZES if not both or args.both else {"": SIZES[""]}
    return args, out, sizes


def context(browser, url: str, lang: str, size: tuple[int, int]):
    """A fresh browser context of that size, in that language (the ``cc_lang`` cookie)."""
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]})
    ctx.add_cookies([{"name": "cc_lang", "value": lang, "url": url}])
    return ctx


def login(page, url: str, who: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=login]", who)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state("networkidle")
