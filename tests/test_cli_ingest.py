"""``spsti-monitor services load`` and ``ingest`` as users run them: real processes, real exit
statuses (0 when every file was read, 2 when one cannot be read), one French line per error
on stderr, never a traceback, and nothing stored lost when a file fails."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from helpers import INDICATOR_COLUMNS, REGISTER_COLUMNS, indicator_rows, register_rows, write_csv  # noqa: E402

from monitor.ingest.indicators import ingest_file  # noqa: E402
from monitor.store.models import Observation, Quarantine, Submission  # noqa: E402
from monitor.ingest.register import load_register  # noqa: E402

_SCRIPT = Path(sys.executable).with_name("spsti-monitor")
EXE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "monitor"]


def run(engine_or_url, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    url = engine_or_url if isinstance(engine_or_url, str) else \
        engine_or_url.url.render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if k not in ("SPSTI_MONITOR_DB", "SPSTI_MONITOR_DEBUG")}
    return subprocess.run(EXE + ["--db", url, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


def error_lines(r: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    return [line for line in r.stderr.splitlines() if line.strip()]


def _observations(engine) -> list[tuple]:
    t = Observation.__table__
    with engine.connect() as c:
        return sorted(tuple(r) for r in c.execute(sa.select(t)))


def _quarantine(engine) -> list[tuple]:
    t = Quarantine.__table__
    with engine.connect() as c:
        return sorted((r.id, r.submission_id, r.row_number, r.reason_code) for r in c.execute(sa.select(t)))


def test_services_load_and_ingest_exit_0(engine, tmp_path):
    svcs = register_rows(4)
    reg = write_csv(tmp_path / "services.csv", svcs, REGISTER_COLUMNS, sep=";")
    r = run(engine, "services", "load", str(reg))
    assert r.returncode == 0, r.stderr
    assert "services.csv : 4 service(s) ajouté(s), 0 mis à jour, 0 ligne(s) rejetée(s)" in r.stdout
    assert error_lines(r) == []

    rows = indicator_rows(svcs, ["2025-01", "2025-02"])
    rows.append({"service_id": svcs[0]["service_id"], "period": "2025-02", "indicator": "sir_overdue_rate",
                 "value": 84, "numerator": "", "denominator": ""})
    ind = write_csv(tmp_path / "indicateurs.csv", rows, INDICATOR_COLUMNS)
    # the same file twice in one call: read twice, stored once
    r = run(engine, "ingest", str(ind), str(ind))
    assert r.returncode == 0, r.stderr
    assert error_lines(r) == []
    out = r.stdout.splitlines()
    assert len(out) == 2
    assert out[0].startswith(f"indicateurs.csv : acceptées {len(rows) - 1}, rejetées 1, inchangées 0")
    assert "probablement saisie en pourcentage" in out[0]
    assert "déjà reçu" in out[1] and f"inchangées {len(rows)}" in out[1]
    assert len(_observations(engine)) == len(rows) - 1
    assert [q[3] for q in _quarantine(engine)] == ["probable_percent"]


def test_failed_file_in_the_middle_of_a_multi_file_call(engine, tmp_path):
    svcs = register_rows(3)
    load_register(engine, write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS))
    ingest_file(engine, write_csv(tmp_path / "jan.csv", indicator_rows(svcs, ["2025-01"]), INDICATOR_COLUMNS))
    obs_before, q_before = _observations(engine), _quarantine(engine)

    feb = write_csv(tmp_path / "feb.csv", indicator_rows(svcs, ["2025-02"], seed=2), INDICATOR_COLUMNS)
    mar = write_csv(tmp_path / "mar.csv", indicator_rows(svcs, ["2025-03"], seed=3), INDICATOR_COLUMNS, sep=";")
    empty = tmp_path / "vide.csv"
    empty.write_bytes(b"")
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    cols = tmp_path / "colonnes.csv"
    cols.write_text("service_id,periode,indicator,valeur\n%s,2025-04,nurse_fte,3\n" % svcs[0]["service_id"],
                    encoding="utf-8")
    missing = tmp_path / "absent.csv"

    r = run(engine, "ingest", str(feb), str(missing), str(empty), str(binary), str(cols), str(mar))

    assert r.returncode == 2
    errors = error_lines(r)
    assert len(errors) == 4, r.stderr
    assert all(line.startswith("Erreur : ") for line in errors)
    assert "absent.csv" in errors[0] and "fichier introuvable" in errors[0]
    assert "vide.csv" in errors[1] and "fichier vide" in errors[1]
    assert "photo.csv" in errors[2] and "binaire" in errors[2]
    assert "colonnes.csv" in errors[3] and "colonne(s) obligatoire(s) absente(s) : period, value" in errors[3]
    out = r.stdout.splitlines()
    assert out == ["feb.csv : acceptées 9, rejetées 0, inchangées 0", "mar.csv : acceptées 9, rejetées 0, inchangées 0"]
    obs_after = _observations(engine)
    assert set(obs_before) <= set(obs_after) and len(obs_after) == len(obs_before) + 18
    assert _quarantine(engine) == q_before
    with engine.connect() as c:
        statuses = [s for (s,) in c.execute(sa.select(Submission.status).order_by(Submission.id))]
    assert statuses == ["ingested", "ingested", "failed", "failed", "failed", "failed", "ingested"]


def test_file_without_required_columns_exit_2_names_them(sqlite_engine, tmp_path):
    path = tmp_path / "fichier.csv"
    path.write_text("service_id;period;indicateur\n1;2025-01;x\n", encoding="utf-8")
    r = run(sqlite_engine, "ingest", str(path))
    assert r.returncode == 2
    errors = error_lines(r)
    assert len(errors) == 1 and errors[0].startswith("Erreur : fichier.csv : ")
    assert "colonne(s) obligatoire(s) absente(s) : indicator, value" in errors[0]
    assert r.stdout == ""
    with sqlite_engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(Observation)) == 0
        assert c.scalar(sa.select(Submission.status)) == "failed"


def test_usage_errors_are_exit_2_without_traceback(sqlite_engine, tmp_path):
    r = run(sqlite_engine, "ingest")                       # FILE... is required
    assert r.returncode == 2
    errors = error_lines(r)
    assert errors and "FILES" in r.stderr


def test_services_load_without_required_columns_exit_2(sqlite_engine, tmp_path):
    path = tmp_path / "registre.csv"
    write_csv(path, register_rows(2), [c for c in REGISTER_COLUMNS if c not in ("region_code", "agrement_end")])
    r = run(sqlite_engine, "services", "load", str(path))
    errors = error_lines(r)
    assert len(errors) == 1 and "registre.csv" in errors[0]
    assert "region_code" in errors[0] and "agrement_end" in errors[0]
    assert r.stdout == ""
    assert r.returncode == 2
