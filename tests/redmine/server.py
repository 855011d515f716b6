"""A real Redmine for the tests: Debian's ``redmine`` package on SQLite, a database of its own.

``RedmineServer.start()`` copies the database the package made at install time (the schema and
Redmine's default data, nothing else) into a temporary folder, prepares it with ``setup.rb``
(REST API on, API keys, project, tracker, statuses, the ticket custom field) and serves it
with WEBrick on a free port, as ``RAILS_ENV=production ruby bin/rails server`` from
``/usr/share/redmine`` with ``DATABASE_URL`` pointing at the copy. ``stop()`` and ``start()``
again give the same Redmine after a downtime. Install: ``apt-get install redmine
redmine-sqlite`` and ``gem "webrick"`` in ``/usr/share/redmine/Gemfile.local`` (``.ci/run``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp

REDMINE = Path("/usr/share/redmine")
INSTALLED_DB = Path("/var/lib/dbconfig-common/sqlite3/redmine/instances/default/redmine_default")
SETUP = Path(__file__).with_name("setup.rb")
START_TIMEOUT = 240.0


def missing() -> str | None:
    """Why a Redmine cannot be run here, or None."""
    if not (REDMINE / "bin" / "rails").exists() or shutil.which("ruby") is None:
        return "Redmine is not installed (apt-get install redmine redmine-sqlite; see .ci/run)"
    if not INSTALLED_DB.exists():
        return f"Redmine's SQLite database {INSTALLED_DB} is missing (install redmine-sqlite)"
    local = REDMINE / "Gemfile.local"
    if "webrick" not in (local.read_text() if local.exists() else ""):
        try:
            with local.open("a") as fh:
                fh.write('gem "webrick"\n')
        except OSError:
            return f'{local} lacks gem "webrick" and cannot be written here'
    return None


class RedmineServer:
    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        self.db = workdir / "redmine.sqlite3"
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.env = {
            **os.environ,
            "RAILS_ENV": "production",
            "DATABASE_URL": f"sqlite3:{self.db}",
            "RAILS_LOG_TO_STDOUT": "",
        }

    def prepare(self) -> dict:
        shutil.copyfile(INSTALLED_DB, self.db)
        out = subprocess.run(
            ["ruby", "bin/rails", "runner", str(SETUP)],
            cwd=REDMINE,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"setup.rb failed:\n{out.stderr[-3000:]}")
        self.info = json.loads(out.stdout.strip().splitlines()[-1])
        return self.info

    def start(self) -> None:
        log = (self.workdir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "ruby",
                "bin/rails",
                "server",
                "-u",
                "webrick",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-P",
                str(self.workdir / f"server-{self.port}.pid"),
            ],
            cwd=REDMINE,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Redmine exited: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/issue_statuses.json", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"Redmine did not answer within {START_TIMEOUT} s: {self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: only what we started
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        (self.workdir / f"server-{self.port}.pid").unlink(missing_ok=True)

    def tail(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    # --- what a support engineer does in Redmine (through its API, as the staff user) --------

    async def api(self, method: str, path: str, body=None, key: str | None = None, **params):
        headers = {"X-Redmine-API-Key": key or self.info["staff_key"]}
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, self.url + path, json=body, params=params, headers=headers) as r,
        ):
            text = await r.text()
            assert r.status < 300, f"{method} {path}: HTTP {r.status} {text[:300]}"
            return json.loads(text) if text.strip() else None

    async def issues_marked(self, marker: str) -> list[dict]:
        found = await self.api(
            "GET",
            "/issues.json",
            project_id="support",
            status_id="*",
            **{f"cf_{self.info['field_id']}": marker},
        )
        return [
            i
            for i in found["issues"]
            for c in i["custom_fields"]
            if c["id"] == self.info["field_id"] and c["value"] == marker
        ]

    async def issue(self, issue_id) -> dict:
        got = await self.api("GET", f"/issues/{issue_id}.json", include="journals,attachments")
        return got["issue"]

    async def reply(self, issue_id, notes: str, **fields) -> dict:
        """A staff member's note (and other changes); the journal Redmine recorded for it."""
        await self.api("PUT", f"/issues/{issue_id}.json", {"issue": {"notes": notes, **fields}})
        return (await self.issue(issue_id))["journals"][-1]

    async def server_time(self):
        """Redmine's own clock, from its answer's Date header (an aware UTC datetime)."""
        from email.utils import parsedate_to_datetime

        async with aiohttp.ClientSession() as s, s.get(self.url + "/issue_statuses.json") as r:
            return parsedate_to_datetime(r.headers["Date"])
