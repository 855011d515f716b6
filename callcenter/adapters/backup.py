"""Backup and restore of the configured database (``callcenter db backup|restore FILE``).

SQLite: the online backup API of the stdlib ``sqlite3`` (a consistent copy while ``serve``
writes; WAL included), and restore by the same API into the live file after checking that
FILE is an intact callcenter database. PostgreSQL: ``pg_dump --format=custom`` and
``pg_restore --clean --if-exists --single-transaction`` when those programs are installed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url


class BackupError(Exception):
    """Anything that stops a backup or a restore, said in one line."""


def _sqlite_path(url) -> Path:
    if url.database in (None, "", ":memory:"):
        raise BackupError("an in-memory SQLite database has nothing to back up")
    return Path(url.database)


def _libpq(url) -> tuple[str, dict[str, str]]:
    """A libpq URL (no driver, no password: that goes in PGPASSWORD) and the environment."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} not found: install the PostgreSQL client (Debian: postgresql-client)"
        )
    return path


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(
            f"{Path(cmd[0]).name} failed: {detail[-1] if detail else done.returncode}"
        )


def backup(database_url: str, file: str | os.PathLike[str]) -> str:
    """Write a backup of the database to ``file``; returns what was done, in words."""
    url = make_url(database_url)
    target = Path(file)
    if target.exists():
        raise BackupError(f"{target} exists; give a new file name")
    if url.get_backend_name() == "sqlite":
        source = _sqlite_path(url)
        if not source.exists():
            raise BackupError(f"{source}: no such database file")
        part = target.with_name(target.name + ".part")
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(part)
        try:
            src.backup(dst)  # the online backup API: consistent while others write
        finally:
            dst.close()
            src.close()
        os.replace(part, target)
        return f"SQLite {source} backed up to {target} ({target.stat().st_size} bytes)"
    if url.get_backend_name() == "postgresql":
        libpq, env = _libpq(url)
        _run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={target}", libpq], env)
        return f"PostgreSQL {url.database} dumped to {target} ({target.stat().st_size} bytes)"
    raise BackupError(f"no backup for {url.get_backend_name()} databases")


def _check_sqlite_backup(path: Path) -> None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok = con.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not an SQLite database ({exc})") from None
    if ok != "ok":
        raise BackupError(f"{path} fails SQLite's integrity check: {ok}")
    if not {"alembic_version", "calls", "call_events"} <= tables:
        raise BackupError(f"{path} is not a callcenter database (its tables are missing)")


def restore(database_url: str, file: str | os.PathLike[str]) -> str:
    """Replace the database's content with the backup in ``file``. Stop ``serve`` first."""
    url = make_url(database_url)
    source = Path(file)
    if not source.is_file():
        raise BackupError(f"{source}: no such file")
    if url.get_backend_name() == "sqlite":
        _check_sqlite_backup(source)
        target = _sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # replaces every page of the target, in one go
        finally:
            dst.close()
            src.close()
        return f"SQLite {target} restored from {source}"
    if url.get_backend_name() == "postgresql":
        libpq, env = _libpq(url)
        _run([_tool("pg_restore"), "--list", str(source)], env)  # a pg_dump archive at all?
        _run(
            [
                _tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                f"--dbname={libpq}",
                str(source),
            ],
            env,
        )
        return f"PostgreSQL {url.database} restored from {source}"
    raise BackupError(f"no restore for {url.get_backend_name()} databases")
