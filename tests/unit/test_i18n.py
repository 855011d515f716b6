"""Both catalogs complete: every message key the templates and the web code use has a
non-empty translation in Russian and in English (a missing one fails here, not on a page)."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract
from jinja2.ext import babel_extract

from callcenter.web import i18n
from callcenter.web.pages import gettext_for
from tests.conftest import ROOT

WEB = ROOT / "callcenter" / "web"


def used_keys() -> dict[str, str]:
    """Every message key in use, with where it was first seen."""
    found: dict[str, str] = {}
    for filename, lineno, message in _extract():
        found.setdefault(message, f"{filename}:{lineno}")
    return found


def _extract():
    keywords = {"_": None, "gettext": None, "N_": None}
    for path in sorted(WEB.rglob("*.html")):
        with path.open("rb") as f:
            for lineno, message, _c, _ctx in extract(
                babel_extract, f, keywords, options={"extensions": "jinja2.ext.i18n"}
            ):
                yield path.relative_to(ROOT), lineno, message
    for path in sorted(WEB.rglob("*.py")):
        with path.open("rb") as f:
            for lineno, message, _c, _ctx in extract("python", f, keywords):
                yield path.relative_to(ROOT), lineno, message


def test_keys_are_found():
    keys = used_keys()
    assert "login_title" in keys and "status_LOCKED" in keys, "the extractor finds nothing"


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_key_in_use_is_translated(lang):
    catalog = i18n.read_catalog(lang)
    missing = [
        f"{key} ({where})"
        for key, where in sorted(used_keys().items())
        if not (catalog.get(key) and catalog.get(key).string and not catalog.get(key).fuzzy)
    ]
    assert not missing, f"{lang}: untranslated keys:\n" + "\n".join(missing)


def test_the_catalogs_hold_the_same_keys():
    ru = {m.id for m in i18n.read_catalog("ru") if m.id}
    en = {m.id for m in i18n.read_catalog("en") if m.id}
    assert ru == en, f"only in ru: {sorted(ru - en)}; only in en: {sorted(en - ru)}"


def test_no_catalog_key_is_unused():
    unused = {m.id for m in i18n.read_catalog("ru") if m.id} - set(used_keys())
    assert not unused, f"catalog keys nothing uses: {sorted(unused)}"


def test_placeholders_agree_between_languages():
    import re

    ru, en = i18n.read_catalog("ru"), i18n.read_catalog("en")
    for m in ru:
        if m.id:
            names = lambda s: sorted(re.findall(r"%\((\w+)\)", s or ""))  # noqa: E731
            assert names(m.string) == names(en.get(m.id).string), m.id


def test_russian_is_the_default_and_cyrillic_round_trips():
    ru, en = gettext_for("ru")[0], gettext_for("en")[0]
    assert ru("status_VALID") != en("status_VALID")
    assert i18n.pick(None) == "ru" and i18n.pick("xx") == "ru" and i18n.pick("en") == "en"
    assert ru("login_title").isprintable() and any("а" <= ch <= "я" for ch in ru("login_title"))


def test_the_catalogs_read_as_utf8_from_disk():
    for lang in i18n.LANGUAGES:
        assert Path(i18n.po_path(lang)).read_bytes().decode("utf-8")


def test_every_word_the_agent_script_asks_for_is_given_to_it():
    import re

    from callcenter.web.pages.agent import script_words

    script = (WEB / "static" / "js" / "agent.js").read_text(encoding="utf-8")
    asked = set(re.findall(r"""\bt\(\s*"(\w+)"\s*[,)]""", script))
    assert asked, "no t(...) calls found in agent.js"
    for lang in i18n.LANGUAGES:
        given = script_words(lang)
        assert asked <= set(given), f"{lang}: agent.js asks for {sorted(asked - set(given))}"
        assert all(given.values())


def test_every_code_the_service_uses_has_its_word():
    from callcenter.domain.calls import REFUSAL_REASONS, SERVICE_CATEGORIES, Outcome, WindowStatus
    from callcenter.services.auth import ROLES
    from callcenter.web.pages import vocabulary as v

    assert set(v.CATEGORY_KEYS) == {f"category_{c}" for c in SERVICE_CATEGORIES}
    assert set(v.REFUSAL_KEYS) == {f"refusal_{r}" for r in REFUSAL_REASONS}
    assert {f"outcome_{o}" for o in Outcome} == set(v.OUTCOME_KEYS)
    assert {f"window_{w}" for w in WindowStatus} <= set(v.WINDOW_KEYS)
    assert {f"role_{r}" for r in ROLES} == set(v.ROLE_KEYS)
    assert {f"status_{s}" for s in v.CERT_STATUSES} <= set(v.STATUS_KEYS)
