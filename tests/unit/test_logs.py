"""Structured logs: one JSON object a line, the call id in every line about a call."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from callcenter import logs
from callcenter.config import ConfigError, load_settings
from callcenter.domain.log_context import bind_call


@pytest.fixture
def captured():
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("INFO", "json", stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_json_lines_carry_the_call_id_of_their_own_task(captured):
    log = logging.getLogger("callcenter.test")

    async def call(call_id: str) -> None:
        bind_call(call_id)
        await asyncio.sleep(0)  # the two calls interleave on one loop
        log.info("окно открыто для %s", call_id)
        await asyncio.sleep(0)
        log.warning("second line")

    await asyncio.gather(call("1795.1"), call("1795.2"))
    log.info("not about a call")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert len(lines) == 5
    by_call = {}
    for rec in lines[:4]:
        by_call.setdefault(rec["call_id"], []).append(rec["message"])
    assert by_call == {
        "1795.1": ["окно открыто для 1795.1", "second line"],
        "1795.2": ["окно открыто для 1795.2", "second line"],
    }
    assert "call_id" not in lines[4]
    assert lines[0]["logger"] == "callcenter.test" and lines[0]["level"] == "INFO"


def test_extra_call_id_and_exceptions(captured):
    log = logging.getLogger("callcenter.test")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed", extra={"call_id": "42.1"})
    rec = json.loads(captured.getvalue())
    assert rec["call_id"] == "42.1" and "ValueError: boom" in rec["exc"]


def test_text_format_tags_the_call():
    stream = io.StringIO()
    handler = logs.configure("INFO", "text", stream)
    try:
        logging.getLogger("x").info("hello", extra={"call_id": "7.7"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert "x: [call 7.7] hello" in stream.getvalue()


def test_format_and_retention_settings_are_checked():
    s = load_settings(environ={"CALLCENTER_LOGGING_FORMAT": "json",
                               "CALLCENTER_RETENTION_PERSONAL_DATA_MONTHS": "36"})  # fmt: skip
    assert s.logging.format == "json" and s.retention.personal_data_months == 36
    with pytest.raises(ConfigError, match=r"logging\.format"):
        load_settings(environ={"CALLCENTER_LOGGING_FORMAT": "xml"})
    with pytest.raises(ConfigError, match=r"retention\.personal_data_months"):
        load_settings(environ={"CALLCENTER_RETENTION_PERSONAL_DATA_MONTHS": "-1"})
