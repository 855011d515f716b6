"""`callcenter db backup FILE` / `db restore FILE` and `retention run`, as real processes."""

from __future__ import annotations

import json

CSV = (
    "number,holder_name,organisation,valid_from\n"
    "{n},Иванов Иван Иванович,ООО «Ромашка»,2026-01-01\n"
)


def _import(cli, tmp_path, number: str) -> None:
    f = tmp_path / f"{number}.csv"
    f.write_text(CSV.format(n=number), encoding="utf-8")
    cli.run("certificates", "import", str(f), check=True)


def test_backup_then_restore_brings_back_exactly_the_backed_up_data(cli, tmp_path):
    cli.run("db", "upgrade", check=True)
    _import(cli, tmp_path, "1234567")
    backup = tmp_path / "backup.db"
    out = cli.run("db", "backup", str(backup), check=True)
    assert backup.is_file() and backup.stat().st_size > 0
    assert "backed up" in out.stdout or "dumped" in out.stdout

    # a second backup never overwrites the first
    again = cli.run("db", "backup", str(backup))
    assert again.returncode != 0 and "exists" in again.stderr
    assert "Traceback" not in again.stderr

    _import(cli, tmp_path, "7654321")  # written after the backup: gone after the restore
    assert cli.run("certificates", "show", "7654321").returncode == 0

    out = cli.run("db", "restore", str(backup), check=True)
    assert "restored" in out.stdout
    shown = json.loads(cli.run("certificates", "show", "1234567", check=True).stdout)
    assert "Иванов Иван Иванович" in json.dumps(shown, ensure_ascii=False)  # Cyrillic intact
    missing = cli.run("certificates", "show", "7654321")
    assert missing.returncode != 0


def test_restore_refuses_what_is_not_a_backup(cli, tmp_path):
    cli.run("db", "upgrade", check=True)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    proc = cli.run("db", "restore", str(junk))
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = cli.run("db", "restore", str(tmp_path / "absent.db"))
    assert proc.returncode != 0 and "no such file" in proc.stderr


def test_retention_run_is_off_until_configured_and_dry_runs(cli):
    cli.run("db", "upgrade", check=True)
    off = cli.run("retention", "run", "--dry-run")
    assert off.returncode != 0 and "personal_data_months" in off.stderr
    dry = cli.run("retention", "run", "--dry-run", "--months", "12", check=True)
    assert dry.stdout.startswith("would anonymise personal data older than ")
    assert "0 call(s)" in dry.stdout
    run = cli.run("retention", "run", "--months", "12", check=True)
    assert run.stdout.startswith("anonymised ")
