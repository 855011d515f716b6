"""The UI's message catalogs: Russian (the default) and English, read at start-up.

Messages are keys (``login_title``, ``status_VALID``), never English text, so a message missing
from either catalog shows up as a key and ``tests/unit/test_i18n.py`` fails on it. The ``.po``
files are the source: they are parsed with Babel's public API when the app is built (no
compiled ``.mo``, no build step). To add a message, use its key in a template (``_("key")``)
or in code (``_("key")``/``N_("key")``), add it to both ``<lang>/LC_MESSAGES/messages.po``;
``pybabel extract -F babel.cfg -o /tmp/messages.pot .`` lists every key in use.

The language is the user's choice, kept in the ``cc_lang`` cookie (``POST /lang``); without
one it is Russian.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("ru", "en")
DEFAULT = "ru"
COOKIE = "cc_lang"
DOMAIN = "messages"
HERE = Path(__file__).resolve().parent


def po_path(lang: str) -> Path:
    return HERE / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(lang: str):
    """The language's catalog as Babel reads it (for the tests too)."""
    with po_path(lang).open("rb") as f:
        return read_po(f, locale=lang, domain=DOMAIN)


@cache
def translations(lang: str) -> Translations:
    """The language's gettext translations, built in memory from its ``.po`` file."""
    buf = io.BytesIO()
    write_mo(buf, read_catalog(lang))
    buf.seek(0)
    return Translations(buf, domain=DOMAIN)


def load_all() -> dict[str, Translations]:
    """Every catalog, read once at start-up (a broken file stops the service at start)."""
    return {lang: translations(lang) for lang in LANGUAGES}


def pick(value: str | None) -> str:
    """A supported language from a cookie or form value; Russian for anything else."""
    return value if value in LANGUAGES else DEFAULT


def N_(key: str) -> str:
    """Marks a key for extraction where it is translated later."""
    return key
