"""Hostile input against the running service (issue 9): property-based, both databases.

Hypothesis generates each class of malformed request that once gave a 500: deep nesting,
huge integers, lone surrogates, NUL, over-long texts, unknown fields, odd types, hostile
query parameters and path segments. Whatever it sends: never a 5xx, a refused body names
what is wrong, and afterwards the service is healthy and an ordinary call goes through.
"""

from __future__ import annotations

import http.client
import json
import subprocess
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import PG_SKIP, PG_URL, reset_postgres
from tests.e2e.conftest import CLI, Service, base_env

pytestmark = pytest.mark.slow

HOSTILE_TEXT = st.sampled_from(
    ["\x00", "a\x00b", "\ud800", "x\udfffy", "Иванов\u0000", "x" * 5000, "", " ", "%00", "../.."]
)
HOSTILE_NUMBER = st.sampled_from(
    [10**30, -(10**25), 2**63, 1e308, -0.0, 3.5, True, False, 0, -1, 10**18]
)
scalars = st.none() | HOSTILE_TEXT | HOSTILE_NUMBER | st.text(max_size=50) | st.integers()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "event",
    "call_id",
    "at",
    "source",
    "caller_number",
    "certificate",
    "status",
    "queue",
    "agent",
    "hangup_by",
    "number",
    "caller",
    "full_name",
    "organisation",
    "description",
    "category",
    "reason",
    "seconds",
    "outcome",
    "note",
    "caller_name",
    "login",
    "password",
    "answer",
    "colour",
]
EVENTS = ["call_started", "certificate_checked", "queued", "agent_connected", "call_ended"]
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6).map(lambda d: d) | st.builds(
    lambda kind, rest: {"event": kind, "call_id": "1795480500.7", **rest},
    st.sampled_from(EVENTS),
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=4),
)
RAW = [
    b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"n": ' + b"9" * 5000 + b"}",
    b'{"call_id": "\\ud800", "event": "call_started"}',
    b'{"event": "call_started", "call_id": "1.1", "caller_number": "\\u0000"}',
    b"\xff\xfe\x00",
    b"",
    b"[]",
    b'{"event": NaN}',
]
POSTS = [
    "/api/v1/events",
    "/api/v1/ivr/check",
    "/api/v1/tickets",
    "/api/v1/complaints",
    "/api/v1/session",
    "/api/v1/calls/1795480500.7/extend",
    "/api/v1/calls/1795480500.7/escalate",
    "/api/v1/calls/1795480500.7/outcome",
    "/api/v1/tickets/1/answer",
]
QUERY_VALUES = st.sampled_from(
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "9" * 24,
        "-1",
        "%00",
        "\x00",
        "2026-03-17",
        "yesterday",
        "1e9",
        "",
        "open",
        "abandoned",
        "ВАЖНО",
        "0x10",
    ]
) | st.text(max_size=30)
GETS = [
    "/api/v1/calls?{}",
    "/api/v1/tickets?{}",
    "/api/v1/ivr/working-time?{}",
    "/api/v1/certificates?{}",
]
PATHS = st.sampled_from(
    ["/api/v1/calls/{}", "/api/v1/tickets/{}", "/api/v1/certificates/{}", "/api/v1/calls/{}/extend"]
)
SEGMENTS = st.sampled_from(
    ["%00", "x" * 400, "%ED%A0%80", "..%2F..", "99999999999999999999999", "-1", "%20"]
) | st.text(min_size=1, max_size=40)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def hostile(request, tmp_path_factory):
    """The real service, with a token of each kind: (host, port, tokens)."""
    env = base_env()
    if request.param == "postgres":
        if not PG_URL:
            pytest.skip(PG_SKIP)
        import asyncio

        asyncio.run(reset_postgres(PG_URL))
        env["CALLCENTER_DATABASE_URL"] = PG_URL
    work = tmp_path_factory.mktemp(f"hostile-{request.param}")
    tokens = {}
    for role in ("pbx", "supervisor", "portal"):
        out = subprocess.run(
            [*CLI, "tokens", "create", f"hostile-{role}", "--role", role],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        tokens[role] = out.stdout.strip().splitlines()[-1]
    svc = Service(work, env)
    svc.wait_ready()
    yield svc, tokens
    log = svc.log()
    svc.stop()
    assert "Traceback" not in log, log[-3000:]


def send(svc, method, path, body: bytes | None, token: str | None, ctype="application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", svc.http_port, timeout=30)
    headers = {"Content-Type": ctype} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def check(status: int, raw: bytes) -> None:
    assert status < 500, raw[:500]
    if status >= 400:
        answer = json.loads(raw)
        assert answer["error"] and answer["message"]
        if status == 422:
            assert answer.get("fields"), answer  # a refusal names the field(s)


def encode(body) -> bytes:
    return json.dumps(body, ensure_ascii=True).encode()  # surrogates travel as \\ud800


CHECKS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@CHECKS
@given(
    path=st.sampled_from(POSTS), body=bodies, role=st.sampled_from(["pbx", "supervisor", "portal"])
)
def test_hostile_bodies_never_give_a_5xx(hostile, path, body, role):
    svc, tokens = hostile
    check(*send(svc, "POST", path, encode(body), tokens[role]))


@pytest.mark.parametrize("raw", RAW)
@pytest.mark.parametrize("path", POSTS)
def test_hostile_bytes_never_give_a_5xx(hostile, path, raw):
    svc, tokens = hostile
    check(*send(svc, "POST", path, raw, tokens["supervisor"]))


@CHECKS
@given(
    path=st.sampled_from(GETS),
    params=st.dictionaries(
        st.sampled_from(
            ["from", "to", "limit", "offset", "status", "agent", "source", "at", "phone"]
        ),
        QUERY_VALUES,
        max_size=4,
    ),
)
def test_hostile_query_parameters_never_give_a_5xx(hostile, path, params):
    svc, tokens = hostile
    query = "&".join(f"{quote(k)}={quote(v, safe='%')}" for k, v in params.items())
    check(*send(svc, "GET", path.format(query), None, tokens["supervisor"]))


@CHECKS
@given(path=PATHS, segment=SEGMENTS, method=st.sampled_from(["GET", "POST", "PATCH"]))
def test_hostile_path_segments_never_give_a_5xx(hostile, path, segment, method):
    svc, tokens = hostile
    body = encode({"reason": "x", "seconds": 60}) if method != "GET" else None
    check(*send(svc, method, path.format(quote(segment, safe="%")), body, tokens["supervisor"]))


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/calls?offset=" + "9" * 24,
        "/api/v1/calls?limit=" + "9" * 24,
        "/api/v1/calls?offset=%C2%B2",  # a superscript two: str.isdigit() says yes
        "/api/v1/calls?from=0001-01-01T00:00:00%2B14:00",
        "/api/v1/calls?to=9999-12-31T23:59:59-14:00",
        "/api/v1/calls?status=%00",
        "/api/v1/calls?agent=%00",
        "/api/v1/tickets?from=0001-01-01&to=9999-12-31",
        "/api/v1/tickets/%C2%B2",
        "/api/v1/calls/%00",
        "/api/v1/certificates/%00",
        "/api/v1/ivr/working-time?at=0001-01-01T00:00:00%2B14:00",
    ],
)
def test_known_hostile_queries_are_refused_cleanly(hostile, path):
    svc, tokens = hostile
    for role in ("supervisor", "pbx"):
        check(*send(svc, "GET", path, None, tokens[role]))


def test_afterwards_the_service_is_healthy_and_a_call_goes_through(hostile):
    svc, tokens = hostile
    assert send(svc, "GET", "/healthz", None, None)[0] == 200
    call = "1795480999.1"
    for event in (
        {"event": "call_started", "call_id": call, "caller_number": "+79001234567"},
        {"event": "agent_connected", "call_id": call, "agent": "PJSIP/101"},
        {"event": "call_ended", "call_id": call, "hangup_by": "caller"},
    ):
        status, raw = send(svc, "POST", "/api/v1/events", encode(event), tokens["pbx"])
        assert status == 201, raw
    status, raw = send(svc, "GET", f"/api/v1/calls/{call}", None, tokens["supervisor"])
    assert status == 200
    answer = json.loads(raw)
    assert answer["window"]["status"] == "met"
    assert answer["caller_number"] == "+79001234567"
