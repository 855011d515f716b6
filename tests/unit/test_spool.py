"""Where each side keeps its spool by default, and whose entries a spool reads back."""

from __future__ import annotations

import json
import os
import tempfile

from callcenter.config import Settings
from callcenter.telephony.fastagi import service_spool
from callcenter.telephony.spool import Spool, default_script_dir


def test_serve_keeps_its_spool_in_its_own_data_directory():
    default = service_spool(Settings())
    assert default.dir == os.path.join("var", "agi-spool")  # beside var/callcenter.sqlite3
    assert default.owner == "http://127.0.0.1:8080"

    on_file = Settings().replace(database={"url": "sqlite+aiosqlite:////srv/cc/data/cc.sqlite3"})
    assert service_spool(on_file).dir == "/srv/cc/data/agi-spool"

    pg = Settings().replace(database={"url": "postgresql+asyncpg://u@db/cc"}, http={"port": 8081})
    assert (service_spool(pg).dir, service_spool(pg).owner) == (
        os.path.join("var", "agi-spool"),
        "http://127.0.0.1:8081",
    )

    chosen = Settings().replace(agi={"spool_dir": "/var/spool/cc"})
    assert service_spool(chosen).dir == "/var/spool/cc"


def test_a_script_spool_folder_is_found_when_first_needed(tmp_path):
    spool = Spool(owner="http://127.0.0.1:8080")
    assert spool._dir is None
    assert spool.dir == default_script_dir()
    assert spool.dir == os.path.join(tempfile.gettempdir(), "callcenter-agi-spool")
    assert Spool(str(tmp_path), owner="http://x").dir == str(tmp_path)


def test_an_entry_names_its_service_and_keeps_the_time_it_happened(tmp_path):
    spool = Spool(str(tmp_path), owner="http://10.0.0.5:8080/")
    spool.keep({"event": "queued", "call_id": "1.1", "queue": "поддержка"})
    [path] = tmp_path.glob("*.json")
    entry = json.loads(path.read_text(encoding="utf-8"))
    assert entry["for"] == "http://10.0.0.5:8080"
    assert entry["event"]["queue"] == "поддержка"
    assert entry["event"]["at"].endswith("+00:00")
    assert [e for _, e in spool.entries()] == [entry["event"]]


def test_a_spool_reads_back_only_its_owners_entries(tmp_path):
    ours = Spool(str(tmp_path), owner="http://127.0.0.1:8080")
    theirs = Spool(str(tmp_path), owner="http://127.0.0.1:8081")
    theirs.keep({"event": "queued", "call_id": "theirs"})
    ours.keep({"event": "queued", "call_id": "ours"})
    # a file whose name carries our tag but whose content names another owner is not ours
    forged = tmp_path / f"1.000000-1{ours._suffix}"
    forged.write_text(json.dumps({"for": "http://elsewhere", "event": {"call_id": "forged"}}))
    (tmp_path / "2.000000-1.json").write_text(json.dumps({"event": "queued", "call_id": "old"}))

    assert [e["call_id"] for _, e in ours.entries()] == ["ours"]
    assert [e["call_id"] for _, e in theirs.entries()] == ["theirs"]
    assert len(list(tmp_path.glob("*.json"))) == 4  # reading moves nothing
