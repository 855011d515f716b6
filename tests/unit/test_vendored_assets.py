"""The vendored front-end files are what ``scripts/vendor_assets.sh`` pins: the version and
the registry's integrity in ``VERSION``, a licence beside them, and no CDN in any template."""

from __future__ import annotations

import base64
import hashlib
import re

from tests.conftest import ROOT

WEB = ROOT / "callcenter" / "web"
HTMX = WEB / "static" / "vendor" / "htmx"


def pinned(name: str) -> str:
    script = (ROOT / "scripts" / "vendor_assets.sh").read_text(encoding="utf-8")
    return re.search(rf'{name}="\$\{{{name}:-([^}}]+)\}}"', script).group(1)


def test_htmx_is_the_pinned_version_with_its_licence():
    version = (HTMX / "VERSION").read_text(encoding="utf-8")
    assert f"htmx.org {pinned('HTMX_VERSION')}\n" in version
    assert f"integrity {pinned('HTMX_INTEGRITY')}\n" in version
    assert "BSD" in (HTMX / "LICENSE").read_text(encoding="utf-8") or "Zero-Clause" in (
        HTMX / "LICENSE"
    ).read_text(encoding="utf-8")
    assert (HTMX / "htmx.min.js").stat().st_size > 10_000
    assert pinned("HTMX_INTEGRITY").startswith("sha512-")
    # the integrity is the tarball's; the file itself at least names its version
    assert pinned("HTMX_VERSION") in (HTMX / "htmx.min.js").read_text(encoding="utf-8")


def test_pages_load_nothing_from_elsewhere():
    for path in WEB.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r'(src|href)="(https?:)?//', text), path


def test_digest_helper_is_sane():
    # the integrity string format the script compares: sha512- + base64 of 64 bytes
    digest = base64.b64decode(pinned("HTMX_INTEGRITY").removeprefix("sha512-"))
    assert len(digest) == hashlib.sha512().digest_size


def test_echarts_is_the_pinned_version_with_its_licence():
    echarts = WEB / "static" / "vendor" / "echarts"
    version = (echarts / "VERSION").read_text(encoding="utf-8")
    assert f"echarts {pinned('ECHARTS_VERSION')}\n" in version
    assert f"integrity {pinned('ECHARTS_INTEGRITY')}\n" in version
    assert "Apache License" in (echarts / "LICENSE").read_text(encoding="utf-8")
    assert (echarts / "echarts.min.js").stat().st_size > 500_000
