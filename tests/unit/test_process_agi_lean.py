"""The process-AGI driver's lean replacements give what the standard library would.

A process AGI starts for every call, so ``callcenter.telephony.process_agi`` avoids
``urllib.parse``, ``socket``, ``tempfile``, ``pprint`` and ``six`` on a dialogue's path;
these tests hold each replacement to the original and check what the script imports.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.telephony import service_client
from callcenter.telephony.service_client import ServiceClient

ROOT = Path(__file__).resolve().parents[2]

#: Modules a lean script must not load (beyond what the interpreter itself loads at start).
HEAVY = {
    "typing",
    "dataclasses",
    "inspect",
    "pprint",
    "six",
    "socket",
    "selectors",
    "tempfile",
    "random",
    "urllib.parse",
    "http.client",
    "email",
    "pathlib",
    "contextlib",
    "logging",
    "asyncio",
    "callcenter.domain.certificates",
    "callcenter.config",
}


def _reference_split(url: str):
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port, parts.path


URLS = [
    "http://127.0.0.1:8080",
    "http://127.0.0.1:8080/",
    "http://10.0.0.5:8080/callcenter/",
    "https://cc.example.org/api/",
    "https://cc.example.org",
    "http://localhost:08080/x",
    "HTTP://Example.ORG:80/A",
    "http://[::1]:8080/",
    "http://user:pw@host:81/p",
    "http://host:0/",
    "http://host:/",
    "http://host/p?q=1#f",
    "http://host/%7Euser",
    " http://host:80/ ",
    "http://host\t:80/",
    "http://",
    "host:8080",
    "ftp://host/",
]


@pytest.mark.parametrize("url", URLS)
def test_service_url_is_read_as_urlsplit_reads_it(url):
    assert service_client._split_url(url) == _reference_split(url)


@pytest.mark.parametrize("url", ["http://host:99999/", "http://host:port/", "http://[::1/"])
def test_a_bad_service_url_fails_as_urlsplit_fails(url):
    with pytest.raises(ValueError):
        _reference_split(url)
    with pytest.raises(ValueError):
        service_client._split_url(url)


URL_PARTS = st.text(alphabet="abcXYZ019.-_~:/@[]?#% \t", max_size=12)


@given(scheme=st.sampled_from(["http", "https", "HTTP", "ftp", ""]), rest=URL_PARTS)
def test_any_service_url_is_read_as_urlsplit_reads_it(scheme, rest):
    url = f"{scheme}://{rest}"
    try:
        expected = _reference_split(url)
    except ValueError:
        with pytest.raises(ValueError):
            service_client._split_url(url)
        return
    assert service_client._split_url(url) == expected


def test_client_takes_host_port_and_prefix_from_the_url():
    c = ServiceClient("http://10.0.0.5:8080/callcenter/", "t")
    assert (c._tls, c._host, c._port, c._prefix) == (False, "10.0.0.5", 8080, "/callcenter")
    c = ServiceClient("https://cc.example.org", "t")
    assert (c._tls, c._host, c._port, c._prefix) == (True, "cc.example.org", 443, "")


@given(st.text(max_size=16))
def test_caller_numbers_are_quoted_as_by_urllib(text):
    assert service_client.quote(text) == quote(text)


@pytest.mark.parametrize("caller", ["79001112233", "+79001112233", "8 (900) 111", "anonymous"])
def test_caller_number_quoting(caller):
    assert service_client.quote(caller) == quote(caller)


def test_tcp_connection_reaches_a_listening_socket():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        sock = service_client._tcp_connection("127.0.0.1", port, 1.0)
        try:
            peer, _ = server.accept()
            with peer:
                sock.sendall(b"ping")
                assert peer.recv(4) == b"ping"
                peer.sendall(b"pong")
                assert sock.recv(4) == b"pong"
            assert sock.gettimeout() == 1.0
        finally:
            sock.close()


def test_tcp_connection_fails_like_create_connection():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    with pytest.raises(OSError) as ours:
        service_client._tcp_connection("127.0.0.1", port, 1.0)
    with pytest.raises(OSError) as theirs:
        socket.create_connection(("127.0.0.1", port), timeout=1.0)
    assert type(ours.value) is type(theirs.value) is ConnectionRefusedError


def _run(code: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


def test_the_script_imports_stay_lean():
    """Importing the driver and pyst2's AGI loads none of HEAVY (beyond a bare start)."""
    show = "import sys; print(*sys.modules, sep=chr(10))"
    bare = set(_run(show))
    loaded = set(_run(f"from callcenter.telephony import process_agi as p; p._pyst2_agi(); {show}"))
    assert "asterisk.agi" in loaded
    assert (loaded - bare) & HEAVY == set()
    # ours: the driver, its HTTP client, the flow and what the flow needs; not the spool
    # (imported when an event is first kept), nor Asterisk's side (telephony.emulation)
    assert {m for m in loaded if m.startswith("callcenter.")} == {
        "callcenter.domain",
        "callcenter.domain.cert_status",
        "callcenter.domain.numbers",
        "callcenter.telephony",
        "callcenter.telephony.agi",
        "callcenter.telephony.ivr",
        "callcenter.telephony.process_agi",
        "callcenter.telephony.prompts",
        "callcenter.telephony.service_client",
        "callcenter.telephony.variables",
    }


def test_pyst2_is_imported_with_stand_ins_that_are_then_removed():
    code = (
        "import sys\n"
        "from callcenter.telephony import process_agi as p\n"
        "AGI = p._pyst2_agi()\n"
        "import asterisk.agi\n"
        "assert AGI is asterisk.agi.AGI\n"
        "assert asterisk.agi.PY3 is True\n"
        "print('pprint' in sys.modules, 'six' in sys.modules)\n"
        "import pprint\n"
        "print(pprint.pformat({'b': 1, 'a': 2}, width=1).replace(chr(10), '|'))\n"
        "print(asterisk.agi.pprint.pformat({'agi_channel': 'x'}))\n"
        "print(p._pyst2_agi() is AGI)\n"
    )
    assert _run(code) == [
        "False False",
        "{'a': 2,| 'b': 1}",  # the real pprint
        "{'agi_channel': 'x'}",  # pyst2's stand-in
        "True",
    ]


def test_pyst2_needs_nothing_more_of_pprint_and_six():
    """The stand-ins cover what asterisk.agi uses; a pyst2 upgrade that needs more fails here."""
    import importlib.util

    source = Path(importlib.util.find_spec("asterisk.agi").origin).read_text()
    assert set(re.findall(r"\bpprint\.\w+", source)) == {"pprint.pformat"}
    six_lines = [line.strip() for line in source.splitlines() if "six" in line]
    assert six_lines == ["from six import PY3"]


def test_exit_now_flushes_and_keeps_the_exit_code(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(
        "import sys\n"
        "from callcenter.telephony.process_agi import exit_now\n"
        "sys.stdout.write('out-without-newline')\n"
        "sys.stderr.write('err')\n"
        "exit_now(int(sys.argv[1]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": ""}
    for code in (0, 3):
        proc = subprocess.run(
            [sys.executable, str(script), str(code)], env=env, capture_output=True, text=True
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (code, "out-without-newline", "err")


def test_exit_now_flushes_logging_the_way_exit_would(tmp_path):
    """A rare path may have loaded logging (the settings file, the calendar): its handlers
    are flushed and closed, as the interpreter's own exit would, before the fast exit."""
    script = tmp_path / "s.py"
    log = tmp_path / "script.log"
    script.write_text(
        "import logging, logging.handlers, sys\n"
        "from callcenter.telephony.process_agi import exit_now\n"
        "to_file = logging.FileHandler(sys.argv[1], encoding='utf-8')\n"
        "held = logging.handlers.MemoryHandler(100, target=to_file)  # writes on flush only\n"
        "logging.getLogger().addHandler(held)\n"
        "logging.getLogger().warning('звонок 1.1: записано')\n"
        "exit_now(5)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, str(script), str(log)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 5, proc.stderr
    assert log.read_text(encoding="utf-8") == "звонок 1.1: записано\n"
