"""Drop-folder source: new files ingested once by checksum, files being written left alone,
nothing deleted or moved."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pull_helpers import csv_bytes, load_services, observations, pulls, submissions  # noqa: E402

from monitor.config.settings import FolderSourceConfig, Schedule  # noqa: E402
from monitor.sources import pull_source  # noqa: E402
from monitor.sources.folder import is_temporary_name  # noqa: E402


def _cfg(folder: Path, settle: float = 0.5, **kw) -> FolderSourceConfig:
    return FolderSourceConfig(name="depot", kind="folder", schedule=Schedule(seconds=60), path=folder,
                              settle_seconds=settle, **kw)


def _age(path: Path, seconds: float = 10) -> None:
    """Pretend the file was last written ``seconds`` ago (settled)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_new_files_ingested_once_by_checksum_and_never_touched(engine, tmp_path):
    svcs = load_services(engine, tmp_path)
    drop = tmp_path / "depot"
    drop.mkdir()
    a = drop / "janvier.csv"
    a.write_bytes(csv_bytes(svcs, ["2025-01"], seed=1))
    _age(a, 20)
    b = drop / "fevrier.CSV"                       # patterns are case-insensitive
    b.write_bytes(csv_bytes(svcs, ["2025-02"], seed=2))
    _age(b, 10)
    (drop / "notes.txt").write_text("pas un fichier d'indicateurs")
    copy = drop / "janvier-copie.csv"              # same bytes under another name
    copy.write_bytes(a.read_bytes())
    _age(copy, 5)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime) for p in drop.iterdir()}

    r1 = pull_source(engine, _cfg(drop))
    assert r1.status == "ok", r1.error
    assert r1.files == 2 and r1.accepted == 2 * len(svcs) * 3 and r1.rejected == 0
    subs = submissions(engine)
    assert [(s.file_name, s.source, s.status) for s in subs] == [
        ("janvier.csv", "depot", "ingested"), ("fevrier.CSV", "depot", "ingested")]   # oldest first
    stored = observations(engine)

    r2 = pull_source(engine, _cfg(drop))           # nothing new: not even a duplicate submission
    assert r2.status == "not_modified" and r2.files == 0
    assert len(submissions(engine)) == 2
    assert observations(engine) == stored
    assert {p.name: (p.read_bytes(), p.stat().st_mtime) for p in drop.iterdir()} == before   # untouched
    recorded = pulls(engine, "depot")
    assert [p.status for p in recorded] == ["ok", "not_modified"]
    assert recorded[0].files == 2 and recorded[0].accepted == r1.accepted and recorded[0].finished_at is not None


def test_partially_written_file_is_ingested_only_once_complete(engine, tmp_path):
    svcs = load_services(engine, tmp_path)
    drop = tmp_path / "depot"
    drop.mkdir()
    full = csv_bytes(svcs, ["2025-01", "2025-02"], seed=4)
    cut = full.index(b"\n", len(full) // 2) + 7      # mid-line: the last row is incomplete

    # 1. an upload under a temporary name, even an old one, is ignored
    part = drop / "mars.csv.part"
    part.write_bytes(full[:cut])
    _age(part, 60)
    assert pull_source(engine, _cfg(drop)).status == "not_modified"
    # 2. the writer renames it but is still appending: too recent, left for the next pull
    target = drop / "mars.csv"
    part.rename(target)
    os.utime(target, None)
    r = pull_source(engine, _cfg(drop, settle=30))
    assert r.status == "not_modified" and r.files == 0
    assert any("en cours d'écriture" in n and "mars.csv" in n for n in r.notes)
    assert submissions(engine) == []
    # 3. the writer finishes; once the file has settled it is ingested, complete, once
    with open(target, "ab") as fh:
        fh.write(full[cut:])
    _age(target, 60)
    r = pull_source(engine, _cfg(drop, settle=30))
    assert r.status == "ok" and r.files == 1 and r.rejected == 0
    assert r.accepted == len(svcs) * 3 * 2
    assert pull_source(engine, _cfg(drop, settle=30)).status == "not_modified"
    subs = submissions(engine)
    assert len(subs) == 1 and subs[0].rows_total == len(svcs) * 3 * 2 and subs[0].file_name == "mars.csv"
    assert target.read_bytes() == full


def test_unreadable_file_recorded_once_and_does_not_block_others(engine, tmp_path):
    svcs = load_services(engine, tmp_path)
    drop = tmp_path / "depot"
    drop.mkdir()
    bad = drop / "casse.csv"
    bad.write_bytes(b"colonne_a,colonne_b\n1,2\n")
    good = drop / "bon.csv"
    good.write_bytes(csv_bytes(svcs, ["2025-01"]))
    for p in (bad, good):
        _age(p, 10)
    r = pull_source(engine, _cfg(drop))
    assert r.status == "error" and r.files == 1 and r.accepted > 0
    assert "casse.csv" in r.error and "service_id" in r.error
    assert sorted((s.file_name, s.status) for s in submissions(engine)) == [("bon.csv", "ingested"),
                                                                           ("casse.csv", "failed")]
    # the same unreadable bytes are not refused again at every pull
    r = pull_source(engine, _cfg(drop))
    assert r.status == "not_modified"
    assert len(submissions(engine)) == 2
    # a corrected version (new bytes) is taken
    bad.write_bytes(csv_bytes(svcs, ["2025-02"]))
    _age(bad, 5)
    r = pull_source(engine, _cfg(drop))
    assert r.status == "ok" and r.files == 1


def test_oversize_file_refused_unread_once_and_others_taken(sqlite_engine, tmp_path, monkeypatch):
    engine = sqlite_engine
    svcs = load_services(engine, tmp_path)
    drop = tmp_path / "depot"
    drop.mkdir()
    big = drop / "enorme.csv"
    big.write_bytes(csv_bytes(svcs, ["2025-01", "2025-02"]) * 20)
    good = drop / "bon.csv"
    good.write_bytes(csv_bytes(svcs, ["2025-03"]))
    for p in (big, good):
        _age(p, 10)
    monkeypatch.setenv("SPSTI_MONITOR_MAX_FILE_MB", "1")
    big.write_bytes(big.read_bytes() + b"x" * (1024 * 1024))     # just over 1 MB
    _age(big, 10)
    read = []
    real_read_bytes = Path.read_bytes

    def spy(self):
        read.append(self.name)
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    r = pull_source(engine, _cfg(drop))
    assert r.status == "error" and "enorme.csv" in r.error and "trop volumineux" in r.error
    assert "enorme.csv" not in read                    # never loaded into memory
    assert sorted((s.file_name, s.status) for s in submissions(engine)) == [("bon.csv", "ingested"),
                                                                           ("enorme.csv", "failed")]
    r = pull_source(engine, _cfg(drop))                # recognised: not refused again at every pull
    assert r.status == "not_modified" and len(submissions(engine)) == 2


def test_missing_folder_is_a_retryable_error(sqlite_engine, tmp_path):
    engine = sqlite_engine
    r = pull_source(engine, _cfg(tmp_path / "absent"))
    assert r.status == "error" and r.retryable and "introuvable" in r.error
    assert pulls(engine)[0].status == "error"


@pytest.mark.parametrize("name, temporary", [
    ("a.csv", False), ("a.xlsx", False), ("a.csv.part", True), ("a.csv.tmp", True), ("~$a.xlsx", True),
    (".a.csv", True), ("a.csv.filepart", True), ("a.csv~", True), ("a.crdownload", True)])
def test_temporary_names(name, temporary):
    assert is_temporary_name(name) is temporary
