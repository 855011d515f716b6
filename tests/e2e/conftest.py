"""Fixtures that run the real ``callcenter`` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pytest

from callcenter.calendar import MOSCOW
from callcenter.domain.certificates import Certificate, Contact, HolderType, luhn_complete
from tests.browser import launch
from tests.conftest import PG_SKIP, PG_URL, ROOT, free_port, reset_postgres

CLI = [sys.executable, "-m", "callcenter.cli"]


class Cli:
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env

    def run(self, *args: str, stdin: str = "", check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [*CLI, *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.workdir,
            env=self.env,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"callcenter {' '.join(args)} failed:\n{proc.stderr}")
        return proc


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def agi_env(url: str, token: str, tmp_path: Path) -> dict[str, str]:
    """What an AGI script's process gets from Asterisk's environment in these tests."""
    return {
        "CALLCENTER_URL": url,
        "CALLCENTER_TOKEN": token,
        "PYTHONPATH": str(ROOT),
        "CALLCENTER_AGI_SPOOL_DIR": str(tmp_path / "spool"),
    }


def local_calendar_env(tmp_path: Path, *, open_now: bool) -> dict[str, str]:
    """What makes a process AGI's local calendar (used while the service is down, and read
    against the host's clock) answer the same whatever the wall clock says: a week around
    today made working days open round the clock (``open_now``), or days off."""
    today = date.today()
    days = ", ".join(f'"{today + timedelta(days=k)}"' for k in range(-3, 4))
    path = tmp_path / "calendar-overrides.toml"
    path.write_text(f"{'working_days' if open_now else 'days_off'} = [{days}]\n")
    env = {"CALLCENTER_CALENDAR_OVERRIDES_FILE": str(path)}
    if open_now:
        env |= {"CALLCENTER_POLICY_DAY_START": "00:00", "CALLCENTER_POLICY_DAY_END": "23:59:59"}
    return env


@pytest.fixture
def settings(settings):
    """The shared settings, believing any event instant: a process AGI stamps its events with
    the host's wall clock, while the service under test keeps its clock at a fixed working
    moment (``tests/integration/test_event_safety.py`` holds the skew rule itself)."""
    return settings.replace(
        events={"max_past_seconds": 100 * 366 * 86400, "max_future_seconds": 100 * 366 * 86400}
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def cli(request, tmp_path) -> Cli:
    """The command line against an empty database of either kind, run from a scratch folder."""
    if request.param == "postgres":
        if not PG_URL:
            pytest.skip(PG_SKIP)
        await reset_postgres(PG_URL)
        return Cli(tmp_path, base_env(CALLCENTER_DATABASE_URL=PG_URL))
    return Cli(tmp_path, base_env())


@pytest.fixture
def sqlite_cli(tmp_path) -> Cli:
    return Cli(tmp_path, base_env())


class Service:
    """``callcenter serve`` as a child process on free ports."""

    def __init__(self, workdir: Path, env: dict[str, str], args=("--demo",)) -> None:
        self.http_port, self.agi_port = free_port(), free_port()
        env = {
            **env,
            "CALLCENTER_HTTP_PORT": str(self.http_port),
            "CALLCENTER_FASTAGI_PORT": str(self.agi_port),
        }
        self.out = (workdir / "serve.log").open("w+")
        self.proc = subprocess.Popen(
            [*CLI, "serve", *args],
            cwd=workdir,
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"serve not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        self.out.flush()
        self.out.seek(0)
        return self.out.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


@pytest.fixture
def service_factory(tmp_path):
    started: list[Service] = []

    def start(env=None, args=("--demo",)) -> Service:
        s = Service(tmp_path, env or base_env(), args)
        started.append(s)
        s.wait_ready()
        return s

    yield start
    for s in started:
        s.stop()


# the registry_data fixture: a valid number (with a contact), an expired one, another valid
VALID = luhn_complete("100000000001")
EXPIRED = luhn_complete("100000000002")
OTHER = luhn_complete("100000000003")


@pytest.fixture
async def registry_data(container, clock):
    today = clock.now().astimezone(MOSCOW).date()
    await container.registry.import_certificates(
        [
            Certificate(
                VALID,
                HolderType.PERSON,
                "Иванов Иван Иванович",
                "",
                "П",
                "5.0.1",
                today - timedelta(days=30),
                today + timedelta(days=300),
                contacts=[Contact("Иванов Иван Иванович", "+79001112233")],
            ),
            Certificate(
                EXPIRED,
                HolderType.PERSON,
                "Петров Пётр",
                "",
                "П",
                "5.0.1",
                date(2024, 1, 1),
                date(2024, 12, 31),
            ),
            Certificate(
                OTHER,
                HolderType.ORGANISATION,
                "",
                "ООО «Ромашка»",
                "П",
                "5.0.1",
                today - timedelta(days=30),
                today + timedelta(days=300),
            ),
        ],
        clock.now(),
    )


@pytest.fixture(scope="module")
def browser():
    """One Debian chromium per browser-test module, driven by Playwright's sync API (skipped
    where Playwright is not installed; each module still checks that chromium is there)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
