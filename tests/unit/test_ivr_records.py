"""The flow's records and AgiReply behave exactly as the dataclasses they replaced.

They are written out by hand so that a process AGI does not import ``dataclasses`` (and
with it ``inspect``) at every call; the reference dataclasses below are the old
definitions, and each record must match its reference in construction, defaults, repr,
equality, hashing, immutability and copying.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.domain.certificates import CheckDigit, NumberFormat
from callcenter.telephony import agi, ivr


class Ref:
    """The old definitions, verbatim."""

    @dataclass(frozen=True)
    class Agi:
        line: str

    @dataclass(frozen=True)
    class WorkingTime:
        pass

    @dataclass(frozen=True)
    class CallerCertificates:
        caller: str

    @dataclass(frozen=True)
    class Check:
        call_id: str
        caller: str | None
        number: str

    @dataclass(frozen=True)
    class Report:
        event: dict[str, Any]

    @dataclass(frozen=True)
    class OpenState:
        open: bool
        next_opening: datetime | None = None

    @dataclass(frozen=True)
    class Hint:
        number: str
        status: str

    @dataclass(frozen=True)
    class IvrOptions:
        min_length: int = 6
        max_length: int = 20
        luhn: bool = False
        max_attempts: int = 3
        digit_timeout_ms: int = 7000
        offer_timeout_ms: int = 5000
        queue: str = "support"
        source: str = "agi"
        language: str = "ru"
        voicemail: bool = True
        record_dir: str = "/var/spool/asterisk/callcenter-voicemail"
        record_max_ms: int = 40_000
        record_silence_s: int = 4

    @dataclass
    class Outcome:
        call_id: str = ""
        route: str = ""
        status: str = ""
        number: str = ""
        hung_up: bool = False
        service_down: bool = False
        attempts: int = 0
        log: list[str] = field(default_factory=list)

    @dataclass(frozen=True)
    class AgiReply:
        code: int
        result: str
        data: str | None
        endpos: int | None
        raw: str


WHEN = datetime(2026, 3, 17, 9, 0, tzinfo=UTC)

# (new class, reference class, [(args, kwargs), ...]); the first two samples differ.
CASES = [
    (ivr.Agi, Ref.Agi, [(("GET VARIABLE X\n",), {}), ((), {"line": "NOOP\n"})]),
    (ivr.WorkingTime, Ref.WorkingTime, [((), {})]),
    (ivr.CallerCertificates, Ref.CallerCertificates, [(("79001112233",), {}), (("",), {})]),
    (
        ivr.Check,
        Ref.Check,
        [(("1.1", None, "123456"), {}), (("1.1",), {"caller": "7", "number": "9"})],
    ),
    (ivr.Report, Ref.Report, [(({"event": "queued"},), {}), ((), {"event": {}})]),
    (ivr.OpenState, Ref.OpenState, [((True,), {}), ((False, WHEN), {}), ((), {"open": 0})]),
    (ivr.Hint, Ref.Hint, [(("123", "VALID"), {}), ((), {"number": "1", "status": "EXPIRED"})]),
    (
        ivr.IvrOptions,
        Ref.IvrOptions,
        [((), {}), ((8, 12, True), {"queue": "q", "source": "fastagi"}), ((), {"luhn": True})],
    ),
    (
        ivr.Outcome,
        Ref.Outcome,
        [((), {}), (("1.2", "QUEUE", "VALID", "123", True, True, 2, ["a"]), {})],
    ),
    (
        agi.AgiReply,
        Ref.AgiReply,
        [
            ((200, "1", "timeout", None, "200 result=1 (timeout)"), {}),
            ((), {"code": 511, "result": "", "data": None, "endpos": None, "raw": "511 x"}),
        ],
    ),
]
IDS = [case[0].__name__ for case in CASES]


def _hashable(obj) -> bool:
    try:
        hash(obj)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize(("new", "ref", "samples"), CASES, ids=IDS)
def test_fields_repr_and_equality_match_the_dataclass(new, ref, samples):
    assert new.__name__ == ref.__name__
    assert new.__match_args__ == ref.__match_args__
    assert [p.name for p in inspect.signature(new).parameters.values()] == [
        f.name for f in dataclasses.fields(ref)
    ]
    for args, kwargs in samples:
        a, r = new(*args, **kwargs), ref(*args, **kwargs)
        assert repr(a) == repr(r).replace("Ref.", "")
        for f in dataclasses.fields(ref):
            assert getattr(a, f.name) == getattr(r, f.name)
        assert a == new(*args, **kwargs)
        assert a != r  # like a dataclass: only the same class compares equal
        assert (a == object()) is False
        assert _hashable(a) == _hashable(r)
        if _hashable(r):
            assert hash(a) == hash(r)
            assert hash(a) == hash(new(*args, **kwargs))
    if len(samples) > 1:
        (a1, k1), (a2, k2) = samples[:2]
        assert new(*a1, **k1) != new(*a2, **k2)


@pytest.mark.parametrize(("new", "ref", "samples"), CASES, ids=IDS)
def test_copies_and_pickles_equal_the_original(new, ref, samples):
    for args, kwargs in samples:
        a = new(*args, **kwargs)
        for twin in (copy.copy(a), copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
            assert type(twin) is new
            assert twin == a


FROZEN = [c for c in CASES if c[1] is not Ref.Outcome]


@pytest.mark.parametrize(("new", "ref", "samples"), FROZEN, ids=[c[0].__name__ for c in FROZEN])
def test_frozen_records_refuse_assignment(new, ref, samples):
    a = new(*samples[0][0], **samples[0][1])
    for name in (*new.__match_args__, "other"):
        with pytest.raises(AttributeError):
            setattr(a, name, 1)
        with pytest.raises(AttributeError):
            delattr(a, name)


def test_outcome_is_mutable_unhashable_and_gets_a_fresh_log():
    a, b = ivr.Outcome(), ivr.Outcome()
    a.log.append("x")
    a.route = "QUEUE"
    assert b.log == [] and b.route == ""
    assert a != b
    with pytest.raises(TypeError):
        hash(a)
    log = ["kept"]
    assert ivr.Outcome(log=log).log is log


def test_options_come_from_settings():
    from callcenter.config import Settings

    s = Settings().replace(certificates={"check_digit": "luhn", "min_length": 8})
    opts = ivr.IvrOptions.from_settings(s, "fastagi")
    assert opts == ivr.IvrOptions(
        min_length=8,
        max_length=s.certificates.max_length,
        luhn=True,
        max_attempts=s.ivr.max_attempts,
        digit_timeout_ms=s.ivr.digit_timeout_ms,
        queue=s.ivr.queue,
        source="fastagi",
    )


def test_flow_type_is_still_there():
    from collections.abc import Generator

    assert ivr.Flow == Generator[Any, Any, ivr.Outcome]
    with pytest.raises(AttributeError):
        ivr.no_such_name  # noqa: B018


NUMBERISH = st.text(
    alphabet=st.sampled_from("0123456789" * 4 + " a#*٣²\u0663"), min_size=0, max_size=24
)


@given(
    digits=NUMBERISH,
    low=st.integers(0, 12),
    span=st.integers(0, 12),
    luhn=st.booleans(),
)
def test_the_local_number_check_is_the_registry_s(digits, low, span, luhn):
    fmt = NumberFormat(low, low + span, CheckDigit.LUHN if luhn else CheckDigit.NONE)
    opts = ivr.IvrOptions(min_length=low, max_length=low + span, luhn=luhn)
    assert opts.number_problem(digits) == fmt.problem(digits)
