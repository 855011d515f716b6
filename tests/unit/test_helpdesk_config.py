"""[helpdesk] settings, the deprecated [forwarding], and the webhook signature."""

import re

import pytest

from callcenter.adapters.helpdesk import build
from callcenter.adapters.helpdesk.base import ticket_id_of
from callcenter.adapters.helpdesk.redmine import RedmineHelpdesk, describe
from callcenter.adapters.helpdesk.webhook import WebhookHelpdesk
from callcenter.config import ConfigError, load_settings
from callcenter.domain import signing
from callcenter.domain.errors import Unauthorized

REDMINE = {
    "CALLCENTER_HELPDESK_KIND": "redmine",
    "CALLCENTER_HELPDESK_URL": "https://redmine.example",
    "CALLCENTER_HELPDESK_API_KEY": "k" * 40,
    "CALLCENTER_HELPDESK_PROJECT": "support",
    "CALLCENTER_HELPDESK_TRACKER": "Поддержка",
    "CALLCENTER_HELPDESK_ANSWERED_STATUS": "Отвечена",
}


def test_redmine_from_the_environment_api_key_included():
    s = load_settings(environ=REDMINE)
    assert s.helpdesk.api_key == "k" * 40 and s.helpdesk.tracker == "Поддержка"
    hd = build(s)
    assert isinstance(hd, RedmineHelpdesk) and hd.polls
    assert hd.marker("ticket-42") == "cc-42" and hd.ticket_of("cc-42") == 42
    assert hd.ticket_of("other-42") is None and hd.ticket_of("cc-x") is None


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("CALLCENTER_HELPDESK_PROJECT", "helpdesk.project: is required for Redmine"),
        ("CALLCENTER_HELPDESK_API_KEY", "helpdesk.api_key: is required for Redmine"),
        ("CALLCENTER_HELPDESK_URL", "helpdesk.url: must be an http(s) URL when kind is redmine"),
    ],
)
def test_a_redmine_without_what_it_needs_names_the_key(drop, message):
    env = {k: v for k, v in REDMINE.items() if k != drop}
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(environ=env)


def test_kind_and_webhook_secret_are_checked():
    with pytest.raises(
        ConfigError, match=re.escape("helpdesk.kind: must be one of none, redmine, webhook")
    ):
        load_settings(environ={"CALLCENTER_HELPDESK_KIND": "zammad"})
    env = {"CALLCENTER_HELPDESK_KIND": "webhook", "CALLCENTER_HELPDESK_URL": "https://h.example"}
    with pytest.raises(
        ConfigError, match=re.escape("helpdesk.secret: must be at least 16 characters")
    ):
        load_settings(environ=env)
    s = load_settings(environ={**env, "CALLCENTER_HELPDESK_SECRET": "s" * 16})
    hd = build(s)
    assert isinstance(hd, WebhookHelpdesk) and hd.secret == "s" * 16 and not hd.polls


def test_forwarding_url_is_still_a_webhook():
    assert build(load_settings(environ={})) is None
    s = load_settings(
        environ={
            "CALLCENTER_FORWARDING_URL": "https://old.example/tickets",
            "CALLCENTER_FORWARDING_TOKEN": "tkn",
        }
    )
    hd = build(s)
    assert isinstance(hd, WebhookHelpdesk)
    assert (hd.url, hd.token, hd.secret) == ("https://old.example/tickets", "tkn", "")
    headers = hd.headers("ticket.created", "ticket-1", b"{}")
    assert headers["Authorization"] == "Bearer tkn" and signing.HEADER not in headers


def test_a_signature_verifies_only_its_body_secret_and_time():
    body = '{"answer": "Ответ"}'.encode()
    header = signing.sign("секрет", body, 1_800_000_000)
    assert header.startswith("t=1800000000,v1=")
    assert signing.verify("секрет", header, body, 1_800_000_100, 300)
    for secret, data, now, code in (
        ("другой", body, 1_800_000_000, "bad_signature"),
        ("секрет", body + b" ", 1_800_000_000, "bad_signature"),
        ("секрет", body, 1_800_000_301, "stale_signature"),
        ("секрет", body, 1_799_999_699, "stale_signature"),
    ):
        with pytest.raises(Unauthorized) as err:
            signing.verify(secret, header, data, now, 300)
        assert err.value.code == code
    for bad in ("", "v1=abc", "t=abc,v1=abc", "t=1800000000"):
        with pytest.raises(Unauthorized):
            signing.verify("секрет", bad, body, 1_800_000_000, 300)
    # while a secret is rotated, either signature will do
    both = header + "," + signing.sign("новый", body, 1_800_000_000).split(",")[1]
    assert signing.verify("новый", both, body, 1_800_000_000, 300)


def test_a_signature_is_taken_once():
    guard = signing.ReplayGuard(300)
    guard.admit("abc", 1000.0)
    with pytest.raises(Unauthorized, match="received already"):
        guard.admit("abc", 1100.0)
    guard.admit("abc", 1700.0)  # long past the tolerance: the time check refuses it anyway


def test_keys_and_description():
    assert ticket_id_of("ticket-7") == 7 and ticket_id_of("ticket-7-withdrawn") is None
    text = describe(
        {
            "id": 7,
            "source": "portal",
            "received_at": "2026-03-17T11:00:00+03:00",
            "due_at": "2026-03-18T14:00:00+03:00",
            "full_name": "Ёлкина Ю.",
            "description": "Строка 1\nСтрока 2",
            "coverage": None,
            "call": None,
        }
    )
    assert "Обращение № 7 (портал)" in text and text.endswith("Строка 1\nСтрока 2")
