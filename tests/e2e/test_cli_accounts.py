"""The operator's users and tokens commands, run as real processes on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

PASSWORD = "длинный-пароль"


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def one_line_error(proc, *words: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0]


def rows(stdout: str) -> dict[str, list[str]]:
    """A listing's rows by their first column (the header included)."""
    return {line.split()[0]: line.split() for line in stdout.strip().splitlines()}


def test_tokens_list_revoke_and_names_in_use(cli):
    assert "no tokens" in cli.run("tokens", "list", check=True).stdout
    first = last_line(cli.run("tokens", "create", "астериск", "--role", "pbx", check=True).stdout)
    cli.run("tokens", "create", "портал", "--role", "portal", check=True)
    one_line_error(
        cli.run("tokens", "create", "астериск", "--role", "supervisor"), "астериск", "exists"
    )

    listed = cli.run("tokens", "list", check=True).stdout
    assert first not in listed and "cc_" not in listed
    table = rows(listed)
    assert table["NAME"] == ["NAME", "ROLE", "CREATED", "REVOKED"]
    assert table["астериск"][1:2] == ["pbx"] and table["астериск"][3] == "-"
    assert table["портал"][1] == "portal"
    assert table["астериск"][2].endswith("+03:00")

    assert "revoked" in cli.run("tokens", "revoke", "астериск", check=True).stdout
    assert rows(cli.run("tokens", "list", check=True).stdout)["астериск"][3].endswith("+03:00")
    one_line_error(cli.run("tokens", "revoke", "астериск"), "no live token")
    one_line_error(cli.run("tokens", "revoke", "nobody"), "nobody")
    # a revoked name may be given to a new token
    cli.run("tokens", "create", "астериск", "--role", "pbx", check=True)
    listed = cli.run("tokens", "list", check=True).stdout
    assert len([ln for ln in listed.splitlines() if ln.startswith("астериск")]) == 2


def test_users_list_disable_enable_passwd(cli):
    assert "no users" in cli.run("users", "list", check=True).stdout
    cli.run(
        "users", "add", "оператор", "--role", "agent", "--name", "Оператор Иванова",
        stdin=PASSWORD + "\n", check=True,
    )  # fmt: skip
    cli.run("users", "add", "boss", "--role", "supervisor", stdin=PASSWORD + "\n", check=True)
    table = rows(cli.run("users", "list", check=True).stdout)
    assert table["оператор"][1:3] == ["agent", "enabled"]
    assert table["оператор"][-2:] == ["Оператор", "Иванова"]
    assert table["boss"][1:3] == ["supervisor", "enabled"]

    assert "disabled" in cli.run("users", "disable", "оператор", check=True).stdout
    assert "already" in cli.run("users", "disable", "оператор", check=True).stdout
    assert rows(cli.run("users", "list", check=True).stdout)["оператор"][2] == "disabled"
    assert "enabled" in cli.run("users", "enable", "оператор", check=True).stdout
    assert "already" in cli.run("users", "enable", "оператор", check=True).stdout

    out = cli.run("users", "passwd", "оператор", stdin="новый-пароль-2\n", check=True).stdout
    assert "оператор" in out and "новый-пароль-2" not in out
    one_line_error(cli.run("users", "passwd", "оператор", stdin="short\n"), "8 characters")
    one_line_error(cli.run("users", "passwd", "оператор"), "8 characters")  # empty stdin


@pytest.mark.parametrize(
    "args",
    [
        ["users", "disable", "nobody"],
        ["users", "enable", "nobody"],
        ["users", "passwd", "nobody"],
        ["tokens", "revoke", "nobody"],
        ["tokens", "create", "x", "--role", "admin"],
        ["tokens", "create", " ", "--role", "pbx"],
        ["users", "add", "x", "--role", "pbx"],
        ["users", "frobnicate"],
        ["tokens", "list", "extra"],
    ],
)
def test_account_mistakes_are_one_line_errors(sqlite_cli, args):
    stdin = PASSWORD + "\n" if args[:2] == ["users", "passwd"] else ""
    one_line_error(sqlite_cli.run(*args, stdin=stdin))


def _post(url: str, path: str, body: dict, cookie: str = "", method: str = "POST"):
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Cookie": cookie},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers


def _get(url: str, path: str, cookie: str = "", token: str = "") -> int:
    headers = {"Cookie": cookie} if cookie else {"Authorization": f"Bearer {token}"}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url + path, headers=headers), timeout=10
        ) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_commands_act_on_a_running_service(sqlite_cli, service_factory):
    """disable, passwd and revoke from the command line, against a service in another process."""
    cli = sqlite_cli
    cli.run("users", "add", "оператор", "--role", "agent", stdin=PASSWORD + "\n", check=True)
    token = last_line(cli.run("tokens", "create", "pbx-1", "--role", "pbx", check=True).stdout)
    svc = service_factory(cli.env, args=())

    def login(password: str = PASSWORD) -> tuple[int, str]:
        status, headers = _post(
            svc.url, "/api/v1/session", {"login": "оператор", "password": password}
        )
        cookie = headers.get("Set-Cookie", "").split(";")[0]
        return status, cookie

    status, cookie = login()
    assert status == 200 and cookie.startswith("cc_session=")
    cli.run("users", "disable", "оператор", check=True)
    assert _get(svc.url, "/api/v1/calls", cookie=cookie) == 401
    assert login()[0] == 401
    cli.run("users", "enable", "оператор", check=True)
    status, cookie = login()
    assert status == 200
    cli.run("users", "passwd", "оператор", stdin="новый-пароль-2\n", check=True)
    assert _get(svc.url, "/api/v1/calls", cookie=cookie) == 401
    assert login()[0] == 401
    assert login("новый-пароль-2")[0] == 200

    cli.run("tokens", "revoke", "pbx-1", check=True)
    assert _get(svc.url, "/api/v1/certificates/1234567", token=token) == 401
