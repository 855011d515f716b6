"""Disk full, for the SQLite file and for the process AGI's spool: a clear error (a 503 with
its code; one line on the script's stderr), no corruption, and recovery when space returns.

The full disk is a small tmpfs mounted for the test (``mount -t tmpfs -o size=...``: needs
root, else the cases are skipped), filled with a file until the kernel says ENOSPC."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.agi_peer import Caller, run_process_agi
from tests.conftest import ROOT
from tests.e2e.conftest import agi_env, free_port, local_calendar_env
from tests.e2e.desk_stack import VALID, DeskStack
from tests.e2e.test_ivr import SOUNDS, typed


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill the file system to the last byte; the filler's path (remove it to free)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        block = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                fh.write(block)
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0")
    with pytest.raises(OSError) as err:
        (disk / "probe").write_bytes(b"x" * 4096)
    assert err.value.errno == errno.ENOSPC
    return filler


def test_sqlite_disk_full_is_a_clear_503_then_recovers(tmp_path, small_disk):
    path = small_disk / "callcenter.sqlite3"
    stack = DeskStack(tmp_path / "s", database_url=f"sqlite+aiosqlite:///{path}")
    try:
        ok_before = [stack.new_call(connect=False, status=None) for _ in range(5)]
        filler = fill(small_disk)
        answers = []
        for n in range(20):  # events keep arriving on the full disk
            body = {"event": "call_started", "call_id": f"1795600000.{n}", "caller_number": "1"}
            answers.append(stack.event(body))
        statuses = {a["status"] for a in answers}
        assert 500 not in statuses, answers[:3]
        refused = [a for a in answers if a["status"] == 503]
        assert refused and {a["error"] for a in refused} == {"database_unavailable"}
        taken = [f"1795600000.{n}" for n, a in enumerate(answers) if a["status"] < 300]

        filler.unlink()  # space returns
        ok_after = [stack.new_call(connect=False, status=None) for _ in range(5)]
        again = [stack.event({"event": "call_started", "call_id": f"1795600000.{n}",
                              "caller_number": "1"}) for n in range(20)]  # fmt: skip
        assert {a["status"] for a in again} <= {200, 201, 202}, again[:3]
        assert stack.service.proc.poll() is None  # the same process throughout
    finally:
        stack.stop()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = [r[0] for r in conn.execute("SELECT call_id FROM calls")]
    assert len(ids) == len(set(ids))
    want = set(ok_before) | set(ok_after) | {f"1795600000.{n}" for n in range(20)}
    assert set(ids) == want and set(taken) <= want


def test_spool_disk_full_still_routes_the_call_and_says_why(tmp_path, small_disk):
    down = f"http://127.0.0.1:{free_port()}"  # the service is down: events go to the spool
    env = agi_env(down, "x", tmp_path) | local_calendar_env(tmp_path, open_now=True)
    env["CALLCENTER_AGI_SPOOL_DIR"] = str(small_disk / "spool")
    os.makedirs(small_disk / "spool")
    script = ROOT / "agi_scripts" / "collect_certificate.py"

    def dial(n: int):
        caller = Caller(uniqueid=f"1795610000.{n}", actions=[typed(VALID)])
        return run_process_agi([script], caller, options=SOUNDS, extra_env=env, timeout=30)

    filler = fill(small_disk)
    res = dial(1)
    assert res.variables.get("CC_ROUTE") == "QUEUE"
    assert res.variables.get("CC_CERT_STATUS") == "UNVERIFIED"
    lines = [ln for ln in res.stderr.splitlines() if "cannot spool event" in ln]
    assert len(lines) == 3 and all("No space left on device" in ln for ln in lines), res.stderr
    assert not [p for p in (small_disk / "spool").iterdir() if p.suffix != ".tmp"]
    for p in (small_disk / "spool").iterdir():  # half-written entries are never taken
        assert p.suffix == ".tmp"

    filler.unlink()
    res = dial(2)
    assert res.variables.get("CC_CERT_STATUS") == "UNVERIFIED"
    kept = [
        json.loads(p.read_text()) for p in (small_disk / "spool").iterdir() if p.suffix != ".tmp"
    ]
    assert [k["event"]["event"] for k in sorted(kept, key=lambda k: k["event"]["at"])] == [
        "call_started",
        "certificate_checked",
        "queued",
    ]
