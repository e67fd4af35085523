"""The command line as users run it: real processes, exit codes, one-line errors."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import INDICATOR_COLUMNS, REGISTER_COLUMNS, indicator_rows, register_rows, write_csv  # noqa: E402

EXE = [sys.executable, "-m", "monitor"]


def run(args, db_url, stdin=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "SPSTI_MONITOR_DB"}
    return subprocess.run(EXE + ["--db", db_url] + args, input=stdin, capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_full_cycle_through_the_cli(db_url, tmp_path):
    svcs = register_rows(15)
    write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS)
    write_csv(tmp_path / "ind.csv", indicator_rows(svcs, [f"2025-{m:02d}" for m in range(1, 7)]), INDICATOR_COLUMNS)
    r = run(["init"], db_url)
    assert r.returncode == 0 and "Schéma à jour" in r.stdout
    assert run(["init"], db_url).returncode == 0          # idempotent
    r = run(["services", "load", str(tmp_path / "reg.csv")], db_url)
    assert r.returncode == 0 and "15 service(s) ajouté(s)" in r.stdout
    r = run(["ingest", str(tmp_path / "ind.csv")], db_url)
    assert r.returncode == 0, r.stderr
    assert "acceptées 270, rejetées 0, inchangées 0" in r.stdout
    r = run(["detect", "--as-of", "2025-03"], db_url)
    assert r.returncode == 0 and "de 2025-01 à 2025-03" in r.stdout, r.stdout + r.stderr
    r = run(["detect"], db_url)
    assert r.returncode == 0 and "de 2025-04 à 2025-06" in r.stdout
    r = run(["detect"], db_url)
    assert "déjà à jour" in r.stdout
    r = run(["alerts", "export", "--format", "json"], db_url)
    assert r.returncode == 0 and isinstance(json.loads(r.stdout), list)
    r = run(["alerts", "export", "--region", "84"], db_url)
    header = next(csv.reader(io.StringIO(r.stdout)))
    assert header[0] == "alert_id" and header[-1] == "explanation"


def test_errors_are_one_sentence_without_traceback(sqlite_url, tmp_path):
    r = run(["detect"], sqlite_url)
    assert r.returncode != 0
    assert "init" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    run(["init"], sqlite_url)
    r = run(["alerts", "export", "--status", "ouvert"], sqlite_url)
    assert r.returncode != 0 and "statut inconnu" in r.stderr and "Traceback" not in r.stderr
    r = run(["detect", "--as-of", "mars"], sqlite_url)
    assert r.returncode != 0 and "période" in r.stderr
    r = run(["users", "add", "x@y.fr", "--name", "X", "--role", "agent", "--password-stdin"], sqlite_url,
            stdin="motdepasse-long\n")
    assert r.returncode != 0 and "au moins une région" in r.stderr
    r = subprocess.run(EXE + ["--db", "notadb://x", "init"], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_users_add_hashes_password_and_authenticates(sqlite_url):
    from monitor.store import db
    from monitor.accounts.users import MAX_FAILED_LOGINS, authenticate

    run(["init"], sqlite_url)
    r = run(["users", "add", "Agent@DREETS.fr", "--name", "Agent", "--role", "agent", "--regions", "84,93",
             "--password-stdin"], sqlite_url, stdin="un-mot-de-passe\n")
    assert r.returncode == 0, r.stderr
    r = run(["users", "add", "agent@dreets.fr", "--name", "Agent", "--role", "agent", "--regions", "84",
             "--password-stdin"], sqlite_url, stdin="un-mot-de-passe\n")
    assert r.returncode != 0 and "existe déjà" in r.stderr
    engine = db.get_engine(sqlite_url)
    user, msg = authenticate(engine, "agent@dreets.fr", "un-mot-de-passe")
    assert user is not None and user.regions == "84,93" and user.digest == "daily" and user.min_severity == "medium"
    assert user.password_hash.startswith("$argon2")
    for _ in range(MAX_FAILED_LOGINS):
        assert authenticate(engine, "agent@dreets.fr", "mauvais")[0] is None
    user, msg = authenticate(engine, "agent@dreets.fr", "un-mot-de-passe")
    assert user is None and "verrouillé" in msg


@pytest.mark.slow
def test_demo_builds_database_and_prints_logins(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    r = subprocess.run(EXE + ["--db", url, "demo", "--no-dashboard"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "agent.ara@demo.spsti.fr" in r.stdout and "demo-spsti-2026" in r.stdout
    out = run(["alerts", "export", "--status", "open"], url)
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) > 0
    assert {r["category"] for r in rows} >= {"data_quality", "rule"}
