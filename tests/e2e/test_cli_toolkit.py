"""What a new user meets first: help, version, typos, one-line mistakes, a busy port."""

import socket
import subprocess

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import CLI, base_env


def test_no_arguments_prints_help(sqlite_cli):
    proc = sqlite_cli.run()
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: callcenter")
    for command in ("serve", "certificates", "calendar", "users", "tokens", "simulate"):
        assert command in proc.stdout


def test_version(sqlite_cli):
    proc = sqlite_cli.run("--version", check=True)
    assert proc.stdout.strip().startswith("callcenter ")
    assert proc.stdout.strip() != "callcenter unknown"  # installed: the package's version


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [(["serv"], "'serve'"), (["certificates", "imprt", "x.csv"], "'import'")],
)
def test_a_mistyped_command_names_the_closest(sqlite_cli, args, suggestion):
    proc = sqlite_cli.run(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"did you mean {suggestion}?" in lines[0]


def test_an_unlike_command_lists_the_commands(sqlite_cli):
    proc = sqlite_cli.run("zzzzzz")
    assert proc.returncode == 2
    listed = proc.stderr.split("one of: ", 1)[1].split(" (", 1)[0].split(", ")
    assert {"serve", "db", "certificates", "users", "tokens", "retention", "helpdesk"} <= set(
        listed
    )


def test_a_missing_csv_is_one_line(sqlite_cli):
    proc = sqlite_cli.run("certificates", "import", "absent.csv")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "callcenter: error: cannot open absent.csv: No such file or directory"
    ]
    assert not (sqlite_cli.workdir / "var").exists()  # nothing was opened or created


@pytest.mark.parametrize(
    "option", [["calendar", "due", "--received"], ["calendar", "open", "--at"]]
)
def test_a_bare_date_is_not_an_instant(sqlite_cli, option):
    proc = sqlite_cli.run(*option, "2026-03-17")
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "not a bare date" in proc.stderr
    assert "e.g. 2026-03-17T11:00:00+03:00" in proc.stderr  # the expected form, by example


def test_serve_refuses_a_busy_port_before_seeding(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = base_env(CALLCENTER_HTTP_PORT=str(port), CALLCENTER_FASTAGI_PORT=str(free_port()))
        proc = subprocess.run(
            [*CLI, "serve", "--demo"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"callcenter: error: [http] port {port} on 127.0.0.1 is not free (Address already in "
        "use); is another callcenter serve running? Set another port with CALLCENTER_HTTP_PORT"
    ]
    assert not (tmp_path / "var").exists()  # no database created, no demo data seeded
