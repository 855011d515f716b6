"""The agent's desk over a real socket, on SQLite and PostgreSQL (docs/agent-screen.md):
interfaces, ownership of calls, the pop, the push socket's targeting and catch-up, the
number the caller dictates, wrap-up, the agent's own lists."""

from __future__ import annotations

from datetime import date

import pytest

from callcenter.domain.certificates import Certificate, Contact, HolderType, Service

PASSWORD = "пароль-длинный"
CERT = "1234567"  # not a real check digit rule: numbers are free-form by default
CALLER = "+79161234567"


def cookie(session) -> dict[str, str]:
    return {"Cookie": f"cc_session={session}"}


@pytest.fixture
async def people(container, clock):
    """Agent A (PJSIP/101), agent B (PJSIP/102), a supervisor and an admin, by session."""
    out = {}
    for login, role, name in (
        ("иванова", "agent", "Иванова Мария"),
        ("петров", "agent", "Петров Пётр"),
        ("boss", "supervisor", ""),
        ("root", "admin", ""),
    ):
        await container.auth.add_user(login, role, PASSWORD, clock.now(), display_name=name)
        s = await container.auth.open_session(login, PASSWORD, clock.now())
        out[login] = cookie(s.cookie)
    await container.desk.set_interfaces("иванова", ["PJSIP/101"], clock.now())
    await container.desk.set_interfaces("петров", ["PJSIP/102"], clock.now())
    return out


async def event(container, clock, **body):
    body.setdefault("at", clock.now().isoformat())
    await container.calls.record(body, clock.now())


async def connect(container, clock, call_id, agent, *, cert=CERT, status="VALID", ended=False):
    await event(container, clock, event="call_started", call_id=call_id, caller_number=CALLER)
    if cert:
        await event(
            container, clock, event="certificate_checked", call_id=call_id, certificate=cert,
            status=status, attempt=1,
        )  # fmt: skip
    await event(container, clock, event="queued", call_id=call_id, queue="support")
    await event(container, clock, event="agent_connected", call_id=call_id, agent=agent)
    if ended:
        await event(container, clock, event="call_ended", call_id=call_id, hangup_by="caller")


@pytest.fixture
async def registry(container, clock):
    await container.registry.import_certificates(
        [
            Certificate(
                number=CERT,
                holder_type=HolderType.ORGANISATION,
                holder_name="Пётр Сидоров",
                organisation="ООО «Ромашка»",
                product="Крипто-Про",
                version="5.0.13000",
                valid_from=date(2026, 1, 1),
                valid_to=date(2026, 12, 31),
                services=(Service.INSTALL, Service.ADMIN, Service.BUILD_UPDATE),
                contacts=[
                    Contact("Пётр Сидоров", CALLER),
                    Contact("Анна Смирнова", "+79990000000"),
                ],
            )
        ],
        clock.now(),
    )


# --- interfaces ------------------------------------------------------------------------------


async def test_admin_sets_interfaces_and_lists_users(client, people):
    r = await client.get("/api/v1/users", headers=people["root"])
    body = await r.json()
    assert r.status == 200
    by_login = {u["login"]: u for u in body["items"]}
    assert by_login["иванова"]["interfaces"] == ["PJSIP/101"]
    assert by_login["иванова"]["display_name"] == "Иванова Мария"
    assert (await client.get("/api/v1/users", headers=people["boss"])).status == 403

    url = "/api/v1/users/иванова/interfaces"
    r = await client.put(url, json={"interfaces": ["PJSIP/101", "Local/agent1@agents"]},
                         headers=people["root"])  # fmt: skip
    assert (r.status, (await r.json())["interfaces"]) == (
        200,
        ["PJSIP/101", "Local/agent1@agents"],
    )
    r = await client.put(url, json={"interfaces": ["PJSIP/102"]}, headers=people["root"])
    body = await r.json()
    assert (r.status, body["error"]) == (409, "interface_taken") and "петров" in body["message"]
    for bad in ({"interfaces": "PJSIP/1"}, {"interfaces": ["no slash"]}, {"x": []}):
        r = await client.put(url, json=bad, headers=people["root"])
        assert r.status == 422, bad
    r = await client.put(
        "/api/v1/users/nobody/interfaces", json={"interfaces": []}, headers=people["root"]
    )
    assert (r.status, (await r.json())["error"]) == (404, "no_such_user")
    r = await client.put(url, json={"interfaces": []}, headers=people["иванова"])
    assert r.status == 403
