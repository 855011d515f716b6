"""A whole process-AGI dialogue stays on the lean import path, and ends the fast way.

The script is started for every call, and its start-up is most of its cost: a full
valid-number dialogue against a real service must not load any of the heavy modules the
driver avoids (see ``tests/unit/test_process_agi_lean.py``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tests.agi_peer import Caller, Dtmf, PeerOptions, run_process_agi
from tests.conftest import ROOT, free_port
from tests.e2e.conftest import VALID, agi_env, local_calendar_env
from tests.unit.test_process_agi_lean import HEAVY

SOUNDS = PeerOptions(sound_patterns=("callcenter/*",))
NEEDED_TO_TALK = {"socket", "selectors"}  # socket imports selectors

WRAPPER = """\
import sys

from callcenter.telephony.process_agi import main

code = main("collect_certificate")
with open(sys.argv[1], "w") as fh:
    fh.write("\\n".join(sys.modules))
sys.exit(code)
"""


def _bare_start_modules() -> set[str]:
    """What the interpreter loads before any script line runs (site, .pth files)."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys; print(*sys.modules, sep=chr(10))"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


async def test_a_valid_number_dialogue_loads_no_heavy_module(
    container, client, pbx_token, registry_data, tmp_path
):
    url = str(client.make_url("/")).rstrip("/")
    env = agi_env(url, pbx_token, tmp_path)
    env.pop("CALLCENTER_AGI_SPOOL_DIR")  # the default spool folder, found only if needed
    script = tmp_path / "collect_and_list_modules.py"
    script.write_text(WRAPPER)
    modules = tmp_path / "modules.txt"

    res = await asyncio.to_thread(
        run_process_agi,
        [script, modules],
        Caller(caller_id="79990000000", actions=[Dtmf(VALID + "#")]),
        options=SOUNDS,
        extra_env=env,
    )

    assert res.variables.get("CC_ROUTE") == "QUEUE", res.stderr
    assert res.variables.get("CC_CERT_STATUS") == "VALID"
    assert res.exit_code == 0
    events = await container.calls.events(res.variables["CC_CALL_ID"])
    assert [e.event for e in events] == ["call_started", "certificate_checked", "queued"]

    loaded = set(modules.read_text().split()) - await asyncio.to_thread(_bare_start_modules)
    assert "asterisk.agi" in loaded
    # the one heavy module a talking dialogue needs: the standard library's public socket
    # API (~3 ms), imported at the first connection; everything else stays off the path
    assert (loaded & HEAVY) - NEEDED_TO_TALK == set()
    assert "socket" in loaded


async def test_the_installed_script_exits_cleanly_when_the_service_is_down(tmp_path):
    """The script's own ending (exit_now) after a dialogue with no service at all."""
    env = {
        "CALLCENTER_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "CALLCENTER_TOKEN": "t",
        "PYTHONPATH": str(ROOT),
        "CALLCENTER_AGI_SPOOL_DIR": str(tmp_path / "spool"),
        **local_calendar_env(tmp_path, open_now=True),  # the script's own calendar: open
    }
    res = await asyncio.to_thread(
        run_process_agi,
        [ROOT / "agi_scripts" / "collect_certificate.py"],
        Caller(actions=[Dtmf(VALID + "#")]),
        options=SOUNDS,
        extra_env=env,
    )
    assert res.exit_code == 0
    assert res.variables.get("CC_ROUTE") == "QUEUE"
    assert res.variables.get("CC_CERT_STATUS") == "UNVERIFIED"
    assert "service error" in res.stderr
    assert list((tmp_path / "spool").glob("*.json"))  # the failed report was kept
