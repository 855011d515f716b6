"""`users add --interface` and `users interfaces`, run as real processes on both databases."""

from __future__ import annotations

from tests.e2e.test_cli_accounts import one_line_error, rows

PASSWORD = "длинный-пароль"


def test_interfaces_on_add_list_set_and_refused_when_taken(cli):
    out = cli.run(
        "users",
        "add",
        "иванова",
        "--role",
        "agent",
        "--interface",
        "PJSIP/101",
        "--interface",
        "Local/agent1@agents",
        stdin=PASSWORD + "\n",
        check=True,
    ).stdout
    assert "PJSIP/101" in out
    shown = cli.run("users", "interfaces", "иванова", check=True).stdout.split()
    assert shown == ["Local/agent1@agents", "PJSIP/101"]
    table = rows(cli.run("users", "list", check=True).stdout)
    assert table["LOGIN"][:5] == ["LOGIN", "ROLE", "STATUS", "CREATED", "INTERFACES"]
    assert table["иванова"][4] == "Local/agent1@agents,PJSIP/101"

    # an interface already mapped to another user: one line, and no user is created
    taken = cli.run(
        "users", "add", "петров", "--role", "agent", "--interface", "PJSIP/101",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    one_line_error(taken, "PJSIP/101", "иванова")
    assert "петров" not in rows(cli.run("users", "list", check=True).stdout)
    one_line_error(
        cli.run("users", "add", "петров", "--role", "agent", "--interface", "нет слэша",
                stdin=PASSWORD + "\n"),
        "interface",
    )  # fmt: skip

    cli.run("users", "add", "петров", "--role", "agent", stdin=PASSWORD + "\n", check=True)
    assert "no interfaces" in cli.run("users", "interfaces", "петров", check=True).stdout
    one_line_error(cli.run("users", "interfaces", "петров", "--set", "PJSIP/101"), "иванова")
    cli.run("users", "interfaces", "петров", "--set", "PJSIP/102", check=True)
    cli.run("users", "interfaces", "иванова", "--set", "PJSIP/101", check=True)
    assert cli.run("users", "interfaces", "иванова", check=True).stdout.split() == ["PJSIP/101"]
    # --set alone clears them
    cli.run("users", "interfaces", "петров", "--set", check=True)
    assert "no interfaces" in cli.run("users", "interfaces", "петров", check=True).stdout
    one_line_error(cli.run("users", "interfaces", "nobody"), "nobody")
