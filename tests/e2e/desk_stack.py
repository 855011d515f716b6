"""A real ``callcenter serve`` set up for the agent's screen: certificates, agents with their
queue interfaces, an admin and a PBX token, all made with the ``callcenter`` command, and the
call events the switch would post. Used by the browser tests and ``scripts/screenshots.py``."""

from __future__ import annotations

import itertools
import json
import os
import time
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

from callcenter.domain.certificates import luhn_complete
from tests.e2e.conftest import Cli, Service, base_env

PASSWORD = "пароль-для-теста"
VALID = luhn_complete("100000000001")  # a person, Cyrillic, with the caller as a contact
COMPANY = luhn_complete("100000000002")  # an organisation, three services of five
EVIL = luhn_complete("100000000003")  # a holder named like markup
CALLER = "+79001234567"
EVIL_NAME = "<img src=x onerror=alert(1)>"
AGENTS = {"agent1": ("Иванова Мария", "PJSIP/101"), "agent2": ("Петров Пётр", "PJSIP/102")}
_ids = itertools.count(1)

CSV_HEADER = (
    "number,holder_type,holder_name,organisation,contacts,product,version,"
    "valid_from,valid_to,services\n"
)


def certificates_csv(today: date) -> str:
    start = (today - timedelta(days=60)).isoformat()
    return CSV_HEADER + "".join(
        [
            f'{VALID},person,Сидоров Пётр Иванович,,"Сидоров Пётр Иванович <{CALLER}>; '
            f'Сидорова Анна <+79009876543>",Континент-АП,5.0.13000,{start},,\n',
            f"{COMPANY},organisation,Смирнова Анна Сергеевна,ООО «Ромашка»,"
            f'"Смирнова Анна Сергеевна <+79002223344>",Континент-АП,4.1.2050,{start},,'
            "install;admin;build_update\n",
            f'{EVIL},person,"{EVIL_NAME}",,,Континент-АП,5.0.13000,{start},,\n',
        ]
    )


class DeskStack:
    """One service on free ports, in its own folder, with its own SQLite file (or the given
    database URL), set up through the command line before it starts."""

    def __init__(self, workdir: Path, *, database_url: str = "", **env: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        extra = {"CALLCENTER_LOGGING_LEVEL": "INFO", **env}
        if database_url:
            extra["CALLCENTER_DATABASE_URL"] = database_url
        self.env = base_env(**extra)
        self.cli = Cli(workdir, self.env)
        self.cli.run("db", "upgrade", check=True)
        (workdir / "certs.csv").write_text(certificates_csv(date.today()), encoding="utf-8")
        self.cli.run("certificates", "import", "certs.csv", check=True)
        for login, (name, interface) in AGENTS.items():
            self.add_user(login, "agent", name, interface)
        self.add_user("admin", "admin", "Администратор")
        proc = self.cli.run("tokens", "create", f"pbx-{os.getpid()}", "--role", "pbx", check=True)
        self.token = proc.stdout.strip().splitlines()[-1]
        self.service = Service(workdir, self.env, args=())
        self.service.wait_ready()
        self.url = self.service.url

    def add_user(self, login: str, role: str, name: str, *interfaces: str) -> None:
        args = ["users", "add", login, "--role", role, "--name", name]
        for interface in interfaces:
            args += ["--interface", interface]
        self.cli.run(*args, stdin=PASSWORD + "\n", check=True)

    def stop(self) -> None:
        self.service.stop()

    # --- the switch -------------------------------------------------------------------------

    def event(self, body: dict) -> dict:
        return self.request("POST", "/api/v1/events", body, token=self.token)

    def request(self, method: str, path: str, body=None, *, token: str = "", cookie: str = ""):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if cookie:
            headers["Cookie"] = f"cc_session={cookie}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return {"status": r.status, **json.loads(r.read() or b"{}")}
        except urllib.error.HTTPError as exc:
            return {"status": exc.code, **json.loads(exc.read() or b"{}")}

    def new_call(
        self,
        interface: str = "PJSIP/101",
        certificate: str = VALID,
        status: str | None = "VALID",
        caller: str = CALLER,
        connect: bool = True,
    ) -> str:
        """A call through the IVR into the queue, connected to ``interface``; its id."""
        call_id = f"{int(time.time())}.{os.getpid()}{next(_ids):03d}"
        self.event({"event": "call_started", "call_id": call_id, "caller_number": caller})
        if status is not None:  # None: the IVR could not check (queued as UNVERIFIED)
            self.event(
                {
                    "event": "certificate_checked",
                    "call_id": call_id,
                    "certificate": certificate,
                    "status": status,
                    "attempt": 1,
                }
            )
        self.event({"event": "queued", "call_id": call_id, "queue": "support"})
        if connect:
            self.connect(call_id, interface)
        return call_id

    def connect(self, call_id: str, interface: str = "PJSIP/101") -> dict:
        return self.event({"event": "agent_connected", "call_id": call_id, "agent": interface})

    def end(self, call_id: str) -> dict:
        return self.event({"event": "call_ended", "call_id": call_id, "hangup_by": "caller"})


def database_for(param: str) -> str:
    """A browser test's database: "" (SQLite, the stack's own file) for ``sqlite``; for
    ``postgres`` the test database, emptied first (the test is skipped without one)."""
    if param != "postgres":
        return ""
    import asyncio
    import concurrent.futures

    import pytest

    from tests.conftest import PG_SKIP, PG_URL, reset_postgres

    if not PG_URL:
        pytest.skip(PG_SKIP)
    # in a thread of its own: Playwright's sync API holds this thread's event loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, reset_postgres(PG_URL)).result()
    return PG_URL


def short_window(window: int, warning: int) -> dict[str, str]:
    """A policy whose oral window a browser test can watch run out, and quick timers."""
    return {
        "CALLCENTER_POLICY_ORAL_WINDOW_SECONDS": str(window),
        "CALLCENTER_POLICY_WARNING_SECONDS": str(warning),
        "CALLCENTER_TIMERS_GRACE_SECONDS": "0.5",
        "CALLCENTER_TIMERS_RESYNC_SECONDS": "1",
    }
