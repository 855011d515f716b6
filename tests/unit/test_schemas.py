"""Request bodies: one schema per endpoint, every bad field named, unknown fields refused."""

from __future__ import annotations

import pytest

from callcenter.domain.errors import ValidationError
from callcenter.web import schemas as s


def problems(schema, body) -> dict[str, str]:
    with pytest.raises(ValidationError) as err:
        s.parse(schema, body)
    return err.value.details["fields"]


def test_every_problem_is_named_at_once():
    got = problems(s.PortalTicket, {"description": "  ", "category": "astrology", "colour": "red"})
    assert set(got) == {"full_name", "certificate", "description", "category", "colour"}
    assert got["colour"] == "is not accepted here"


def test_patch_takes_description_not_problem():
    assert problems(s.CallIdentity, {"problem": "x"}) == {"problem": "is not accepted here"}
    body = s.parse(s.CallIdentity, {"description": "Не запускается", "category": "recovery"})
    assert s.present(body, *s.IDENTITY) == {"description": "Не запускается", "category": "recovery"}


def test_reason_rules_have_one_home_each():
    assert "reason" in problems(s.CallOutcome, {"outcome": "refused", "reason": "bored"})
    assert s.parse(s.CallOutcome, {"outcome": "refused", "reason": "locked"}).reason == "locked"
    assert "reason" in problems(s.WindowExtension, {"reason": 5})
    assert s.parse(s.WindowExtension, {}).reason is None  # its presence is the domain's rule


@pytest.mark.parametrize("seconds", [True, 1.5, "60", 0, 3601])
def test_integers_are_integers_in_range(seconds):
    assert "seconds" in problems(s.WindowExtension, {"reason": "r", "seconds": seconds})


@pytest.mark.parametrize("body", [[], "x", None, 5])
def test_a_body_is_an_object(body):
    with pytest.raises(ValidationError):
        s.parse(s.Complaint, body)
