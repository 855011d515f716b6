"""Demo data for a first look: Cyrillic holders, one expired, one not yet valid, one company."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from callcenter.calendar import MOSCOW
from callcenter.domain.certificates import (
    Certificate,
    Contact,
    HolderType,
    Service,
    default_valid_to,
    luhn_complete,
)
from callcenter.domain.errors import Conflict

#: the queue members that answer simulated calls (telephony/simulator.py)
AGENT_INTERFACES = ("PJSIP/101", "PJSIP/102", "PJSIP/103")

#: (login, role, display name, the queue interfaces Asterisk knows the agent by): the demo's
#: simulated calls are answered by the simulator's members, one demo operator each, so every
#: demo call pops up on an operator's screen
DEMO_USERS = (
    ("operator", "agent", "Оператор Иванова", AGENT_INTERFACES[0:1]),
    ("operator2", "agent", "Оператор Смирнов", AGENT_INTERFACES[1:2]),
    ("operator3", "agent", "Оператор Кузнецова", AGENT_INTERFACES[2:3]),
    ("supervisor", "supervisor", "Руководитель Петров", ()),
)


def demo_certificates(now: datetime) -> list[Certificate]:
    today = now.astimezone(MOSCOW).date()
    num = lambda payload: luhn_complete(payload)  # noqa: E731 - valid with or without Luhn checks
    started = today - timedelta(days=90)
    return [
        Certificate(
            num("100000000001"),
            HolderType.PERSON,
            "Иванов Иван Иванович",
            "",
            "Континент-АП",
            "5.0.13000",
            started,
            default_valid_to(started),
            contacts=[Contact("Иванов Иван Иванович", "+79001234567")],
        ),
        Certificate(
            num("100000000002"),
            HolderType.ORGANISATION,
            "",
            "ООО «Ромашка»",
            "Континент-АП",
            "4.1.2050",
            started,
            default_valid_to(started),
            services=(Service.INSTALL, Service.ADMIN, Service.BUILD_UPDATE),
            contacts=[
                Contact("Смирнова Анна Сергеевна", "+79002223344"),
                Contact("Кузнецов Пётр Алексеевич", "+79005556677"),
            ],
        ),
        Certificate(
            num("100000000003"),
            HolderType.PERSON,
            "Соколова Мария Петровна",
            "",
            "Континент-АП",
            "5.0.12000",
            today - timedelta(days=400),
            today - timedelta(days=36),
            contacts=[Contact("Соколова Мария Петровна", "+79007778899")],
        ),
        Certificate(
            num("100000000004"),
            HolderType.PERSON,
            "Попов Алексей Дмитриевич",
            "",
            "Континент-АП",
            "5.1.100",
            today + timedelta(days=10),
            default_valid_to(today + timedelta(days=10)),
        ),
        Certificate(
            num("100000000005"),
            HolderType.ORGANISATION,
            "",
            "АО «Северный ветер»",
            "Континент-АП",
            "5.0.13000",
            started,
            default_valid_to(started),
            contacts=[Contact("Волков Сергей Игоревич", "+79009990011")],
        ),
    ]


async def seed(container) -> list[str]:
    """Seed certificates, users and a PBX token; returns the lines that tell how to log in."""
    now = container.clock.now()
    certs = demo_certificates(now)
    await container.registry.import_certificates(certs, now)
    lines = ["Demo data loaded. Certificates:"]
    for c in certs:
        status = c.status_on(now.astimezone(MOSCOW).date()).value
        lines.append(f"  {c.number}  {status:<13} {c.holder_name or c.organisation}")
    lines.append("UI users (login / password):")
    for login, role, name, interfaces in DEMO_USERS:
        password = f"{login}-demo"
        try:
            await container.auth.add_user(login, role, password, now, display_name=name)
        except Conflict:
            pass
        if interfaces:
            await container.desk.set_interfaces(login, list(interfaces), now)
        on = f", answers {', '.join(interfaces)}" if interfaces else ""
        lines.append(f"  {login} / {password}  ({role}, {name}{on})")
    token = await container.auth.create_token(f"demo-pbx-{secrets.token_hex(2)}", "pbx", now)
    lines.append(f"PBX API token: {token}")
    return lines
