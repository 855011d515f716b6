"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.integration.desk_people import PASSWORD, cookie


@pytest.fixture
async def people(container, clock):
    """Agent A (PJSIP/101), agent B (PJSIP/102), a supervisor and an admin, by session."""
    out = {}
    for login, role, name in (
        ("иванова", "agent", "Иванова Мария"),
        ("петров", "agent", "Петров Пётр"),
        ("boss", "supervisor", "Начальник"),
        ("root", "admin", ""),
    ):
        await container.auth.add_user(login, role, PASSWORD, clock.now(), display_name=name)
        s = await container.auth.open_session(login, PASSWORD, clock.now())
        out[login] = cookie(s.cookie)
    await container.desk.set_interfaces("иванова", ["PJSIP/101"], clock.now())
    await container.desk.set_interfaces("петров", ["PJSIP/102"], clock.now())
    return out
