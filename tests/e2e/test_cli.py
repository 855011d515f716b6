"""The contract's command line, run as a real process."""

import json
import urllib.request

import pytest


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# --- calendar --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "hours", "due"),
    [
        # Friday 15:00 before the working Saturday 2025-11-01 -> 18:00 that Saturday
        ("2025-10-31T15:00:00+03:00", None, "2025-11-01T18:00:00+03:00"),
        ("2025-10-31T12:00:00Z", None, "2025-11-01T18:00:00+03:00"),
        ("2025-10-31T15:00:00", None, "2025-11-01T18:00:00+03:00"),  # no offset = Moscow
        # 23:00 at night: the clock starts at 09:00 of the next working day
        ("2026-03-17T23:00:00+03:00", "3", "2026-03-18T12:00:00+03:00"),
        # 30 Dec 2025 17:00 + 12 h: 1 h on the 30th; the 31st and 1-11 Jan are off;
        # 9 h on Monday 12 Jan; the last 2 h on the 13th
        ("2025-12-30T17:00:00+03:00", None, "2026-01-13T11:00:00+03:00"),
    ],
)
def test_calendar_due(sqlite_cli, received, hours, due):
    args = ["calendar", "due", "--received", received] + (["--hours", hours] if hours else [])
    proc = sqlite_cli.run(*args, check=True)
    assert proc.stdout.strip() == due


def test_calendar_due_utc_and_moscow_agree(sqlite_cli):
    a = sqlite_cli.run("calendar", "due", "--received", "2026-03-20T14:30:00Z", check=True)
    b = sqlite_cli.run("calendar", "due", "--received", "2026-03-20T17:30:00+03:00", check=True)
    assert a.stdout == b.stdout
    assert a.stdout.strip().endswith("+03:00")


@pytest.mark.parametrize(
    ("at", "answer"),
    [
        ("2026-03-17T11:00:00+03:00", "open"),
        ("2026-03-15T11:00:00+03:00", "closed until 2026-03-16T09:00:00+03:00"),  # Sunday
        ("2026-01-09T11:00:00+03:00", "closed until 2026-01-12T09:00:00+03:00"),  # transfer
        ("2026-03-17T18:00:00+03:00", "closed until 2026-03-18T09:00:00+03:00"),  # 18:00 sharp
        ("2025-11-01T10:00:00+03:00", "open"),  # working Sat
        ("2025-12-31T10:00:00+03:00", "closed until 2026-01-12T09:00:00+03:00"),
    ],
)
def test_calendar_open(sqlite_cli, at, answer):
    assert sqlite_cli.run("calendar", "open", "--at", at, check=True).stdout.strip() == answer


@pytest.mark.parametrize(
    "args",
    [
        ["calendar", "due", "--received", "yesterday"],
        ["calendar", "open", "--at", "2026-13-01T10:00"],
        ["calendar", "due", "--received", "2026-03-17T10:00", "--hours", "-1"],
        ["calendar", "due", "--received", "2026-03-17T10:00", "--hours", "many"],
        ["certificates", "show", "12ab"],
        ["tokens", "create", "x", "--role", "god"],
        ["policy", "publish", "--effective", "soon"],
    ],
)
def test_user_mistakes_are_one_line_errors(sqlite_cli, args):
    proc = sqlite_cli.run(*args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip()
    assert len(proc.stderr.strip().splitlines()) <= 2  # argparse adds a usage line


def test_bad_config_names_the_key(sqlite_cli):
    (sqlite_cli.workdir / "bad.toml").write_text("[policy]\noral_window_seconds = -5\n")
    proc = sqlite_cli.run("--config", "bad.toml", "calendar", "open", "--at", "2026-03-17T10:00")
    assert proc.returncode != 0
    assert "policy.oral_window_seconds" in proc.stderr
    assert "Traceback" not in proc.stderr
    sqlite_cli.env["CALLCENTER_HTTP_PORT"] = "http"
    proc = sqlite_cli.run("calendar", "open", "--at", "2026-03-17T10:00")
    assert "CALLCENTER_HTTP_PORT" in proc.stderr


# --- certificates ----------------------------------------------------------------------------

HEADER = (
    "number,holder_type,holder_name,organisation,contacts,product,version,"
    "valid_from,valid_to,services\n"
)


def test_import_and_show(cli):
    (cli.workdir / "c.csv").write_text(
        HEADER + '123456,person,Иванов Иван Иванович,,"Иванов И. И. <+79001234567>",Продукт,'
        "5.0.13000,2026-01-01,,install;admin\n"
        + "234567,organisation,,ООО «Ромашка»,,,,2026-01-01,2026-06-30,\n",
        encoding="utf-8",
    )
    proc = cli.run("certificates", "import", "c.csv", check=True)
    assert "2 new" in proc.stdout
    proc = cli.run("certificates", "import", "c.csv", check=True)
    assert "2 updated" in proc.stdout
    shown = json.loads(cli.run("certificates", "show", "123456", check=True).stdout)
    assert shown["holder_name"] == "Иванов Иван Иванович"
    assert shown["valid_to"] == "2026-12-31"
    assert shown["services"] == ["install", "admin"]
    assert (shown["version"], shown["build"]) == (5, "0.13000")
    missing = cli.run("certificates", "show", "999999")
    assert missing.returncode != 0 and "no certificate" in missing.stderr


def test_one_bad_row_imports_nothing_and_names_the_row(cli):
    (cli.workdir / "bad.csv").write_text(
        HEADER
        + "123456,person,Иванов,,,,,2026-01-01,,\n"
        + "234567,person,Петров,,,,,2026-02-30,,\n"
        + "345678,person,Сидоров,,,,,2026-01-01,,\n",
        encoding="utf-8",
    )
    proc = cli.run("certificates", "import", "bad.csv")
    assert proc.returncode == 1
    assert "line 3" in proc.stderr and "valid_from" in proc.stderr
    assert "nothing imported" in proc.stderr
    assert cli.run("certificates", "show", "123456").returncode != 0


def test_hundred_thousand_rows_import(sqlite_cli):
    lines = [HEADER]
    for i in range(100_000):
        lines.append(
            f"{1000000 + i},person,Абонент Номер {i},,"
            f'"Абонент {i} <+7900{i:07d}>",Продукт,5.0.{i},2026-01-01,,\n'
        )
    (sqlite_cli.workdir / "big.csv").write_text("".join(lines), encoding="utf-8")
    proc = sqlite_cli.run("certificates", "import", "big.csv", check=True)
    assert "imported 100000 certificate(s): 100000 new" in proc.stdout
    assert "100%" in proc.stderr  # progress shown on a large file
    shown = json.loads(sqlite_cli.run("certificates", "show", "1099999", check=True).stdout)
    assert shown["holder_name"] == "Абонент Номер 99999"


# --- users, tokens, policy -------------------------------------------------------------------


def test_users_add_reads_password_from_stdin(cli):
    proc = cli.run(
        "users", "add", "оператор", "--role", "agent", stdin="длинный-пароль\n", check=True
    )
    assert "оператор" in proc.stdout
    again = cli.run("users", "add", "оператор", "--role", "agent", stdin="длинный-пароль\n")
    assert again.returncode != 0 and "already exists" in again.stderr
    weak = cli.run("users", "add", "x", "--role", "agent", stdin="short\n")
    assert weak.returncode != 0 and "8 characters" in weak.stderr


def test_policy_publish_refuses_short_notice(sqlite_cli):
    from datetime import date, timedelta

    soon = (date.today() + timedelta(days=3)).isoformat()
    proc = sqlite_cli.run("policy", "publish", "--effective", soon, "--oral-window-seconds", "900")
    assert proc.returncode != 0 and "15 calendar days" in proc.stderr
    later = (date.today() + timedelta(days=40)).isoformat()
    sqlite_cli.run(
        "policy", "publish", "--effective", later, "--oral-window-seconds", "900", check=True
    )
    listed = sqlite_cli.run("policy", "list", check=True).stdout
    assert "oral window 900 s" in listed and "oral window 600 s" in listed


# --- serve -----------------------------------------------------------------------------------


def test_serve_demo_and_a_created_token(sqlite_cli, service_factory):
    token = last_line(
        sqlite_cli.run("tokens", "create", "asterisk", "--role", "pbx", check=True).stdout
    )
    assert token.startswith("cc_")
    svc = service_factory(sqlite_cli.env)
    log = svc.log()
    assert "operator / operator-demo" in log
    # every member the demo's simulated calls connect to is a demo operator's: their pops show
    from callcenter.demo import AGENT_INTERFACES

    listed = sqlite_cli.run("users", "list", check=True).stdout
    for interface in AGENT_INTERFACES:
        (row,) = [ln for ln in listed.splitlines() if interface in ln]
        assert row.split()[0].startswith("operator")
    numbers = [ln.split()[0] for ln in log.splitlines() if ln.startswith("  1000")]
    assert len(numbers) == 5
    req = urllib.request.Request(
        f"{svc.url}/api/v1/certificates/{numbers[0]}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "VALID"
    assert body["holder_name"] == "Иванов Иван Иванович"
