"""A real `callcenter serve`: the readiness probe and JSON logs naming the call."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

from tests.e2e.conftest import CLI, base_env


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_ready_and_json_logs_with_the_call_id(service_factory, tmp_path):
    env = base_env(CALLCENTER_LOGGING_FORMAT="json", CALLCENTER_LOGGING_LEVEL="INFO",
                   CALLCENTER_RETENTION_PERSONAL_DATA_MONTHS="36")  # fmt: skip
    subprocess.run([*CLI, "db", "upgrade"], cwd=tmp_path, env=env, check=True, capture_output=True)
    token = subprocess.run(
        [*CLI, "tokens", "create", "pbx", "--role", "pbx"],
        cwd=tmp_path, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    svc = service_factory(env, args=())
    assert _get(svc.url + "/healthz/live") == (200, {"status": "ok"})
    status, body = _get(svc.url + "/healthz/ready")
    assert status == 200, body
    assert body == {"status": "ok", "database": "ok", "migrations": "ok", "fastagi": "ok"}

    req = urllib.request.Request(
        svc.url + "/api/v1/events",
        data=json.dumps(
            {"event": "call_started", "call_id": "1795000000.77", "caller_number": "79001234567"}
        ).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status in (200, 201)
    records = []
    for _ in range(50):  # the line is written as the event is stored
        records = [json.loads(line) for line in svc.log().splitlines() if line.startswith("{")]
        if any(r.get("call_id") == "1795000000.77" for r in records):
            break
        time.sleep(0.1)
    about = [r for r in records if r.get("call_id") == "1795000000.77"]
    assert about and all(r["message"] for r in about)
    assert any("retention" in r["logger"] for r in records)  # the daily run ran at start
    # every log line is JSON; only the service's own banner lines are plain text
    plain = [line for line in svc.log().splitlines() if line and not line.startswith("{")]
    assert all(line.startswith(("callcenter serving", "FastAGI on")) for line in plain), plain
