"""The sample systemd unit: restart, drain on stop and hardening options, and systemd accepts it."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "config" / "systemd" / "callcenter.service"


def _service() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        if section == "Service":
            out.setdefault(key, []).append(value)
    return out


def test_restart_drain_and_watchdog():
    s = _service()
    assert s["Type"] == ["notify"] and s["WatchdogSec"] == ["10"]
    assert s["Restart"] == ["on-failure"]
    assert s["KillSignal"] == ["SIGTERM"] and s["KillMode"] == ["mixed"]
    # longer than the service's own 30 s to write pending events after the dialogues end
    assert int(s["TimeoutStopSec"][0]) > 30


def test_hardening_options():
    s = _service()
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert s[key] == [value], key
    assert s["StateDirectory"] == ["callcenter"]  # the only writable place


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_accepts_the_unit(tmp_path):
    text = UNIT.read_text().replace(
        "ExecStart=/opt/callcenter/venv/bin/callcenter serve", f"ExecStart={sys.executable} -V"
    )
    unit = tmp_path / "callcenter.service"
    unit.write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if "callcenter.service" in line and "User" not in line
    ]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


def test_parses_as_ini():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    assert parser["Install"]["WantedBy"] == "multi-user.target"
