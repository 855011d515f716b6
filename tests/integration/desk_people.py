"""How the desk and supervisor tests log in (their ``people`` fixture is in conftest.py)."""

from __future__ import annotations

PASSWORD = "пароль-длинный"


def cookie(session) -> dict[str, str]:
    return {"Cookie": f"cc_session={session}"}
