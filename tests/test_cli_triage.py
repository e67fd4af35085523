"""Triage and follow-ups from the command line: thin commands over the same service layer."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from world import make_world  # noqa: E402

from monitor.cli.main import cli  # noqa: E402


def test_triage_and_follow_ups_through_the_cli(engine, tmp_path):
    w = make_world(engine, tmp_path)
    url = engine.url.render_as_string(hide_password=False)
    runner = CliRunner()

    def run(*args, user="agent84@dreets.test"):
        extra = ["--as", user] if user else []
        return runner.invoke(cli, ["--db", url, *args, *extra], catch_exceptions=False)

    r = run("alerts", "list")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert [int(ln.split("\t")[0]) for ln in lines] == [w.alerts["s0"], w.alerts["s2"], w.alerts["s4"]]
    a = str(w.alerts["s0"])
    r = run("alerts", "ack", a, "--version", "1", "--comment", "Je prends")
    assert r.exit_code == 0 and "prise en charge (version 2)" in r.stdout
    r = run("alerts", "dismiss", a, "--version", "1", "--reason", "faux_positif", "--comment", "x")
    assert r.exit_code == 1 and "Erreur : Cette alerte a été modifiée par Alice Agent à " in r.output
    r = run("alerts", "assign", a, "--to", "agent84b@dreets.test", user="manager84@dreets.test")
    assert r.exit_code == 0 and "attribuée à Bruno Agent" in r.stdout
    due = (date.today() + timedelta(days=30)).isoformat()
    r = run("followups", "add", a, "--kind", "mise_en_conformite", "--due", due, "--notes", "=1+1")
    assert r.exit_code == 0 and "Demande de mise en conformité (D4622-51)" in r.stdout, r.output
    r = run("followups", "add", str(w.alerts["s2"]), "--kind", "mise_en_conformite",
            "--due", (date.today() + timedelta(days=200)).isoformat())
    assert r.exit_code == 1 and "ne peut dépasser 6 mois" in r.output
    r = run("alerts", "show", a)
    assert r.exit_code == 0
    assert "Alerte n° " in r.stdout and "suite engagée" in r.stdout and "Historique :" in r.stdout
    assert "Marie Responsable — attribution" in r.stdout and "création de la suite" in r.stdout
    r = run("followups", "list")
    assert r.exit_code == 0 and "Demande de mise en conformité" in r.stdout
    r = run("followups", "export")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows[0]["notes"] == "'=1+1"
    # out of region, read-only role, unknown user: one French sentence each
    r = run("alerts", "show", str(w.alerts["s1"]))
    assert r.exit_code == 1 and "hors de vos régions" in r.output
    r = run("alerts", "comment", str(w.alerts["s1"]), "bonjour", user="dgt@travail.test")
    assert r.exit_code == 1 and "lecture seule" in r.output
    r = run("alerts", "export", "--format", "json", user="agent93@dreets.test")
    assert r.exit_code == 0 and '"region_code": "84"' not in r.stdout and '"region_code": "93"' in r.stdout
    r = run("alerts", "list", user="personne@nulle.part")
    assert r.exit_code == 1 and "utilisateur inconnu" in r.output
    r = run("alerts", "snooze", str(w.alerts["s2"]), "--until", "demain", "--reason", "x")
    assert r.exit_code == 1 and "format attendu AAAA-MM-JJ" in r.output


def test_cli_errors_are_one_sentence_and_detect_accepts_resolve_after(sqlite_engine, tmp_path):
    make_world(sqlite_engine, tmp_path)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if k != "SPSTI_MONITOR_DB"}
    r = subprocess.run([sys.executable, "-m", "monitor", "--db", url, "alerts", "dismiss", "1", "--as",
                        "agent93@dreets.test", "--reason", "faux_positif", "--comment", "x"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "Erreur : Accès refusé : cette alerte concerne la région Auvergne-Rhône-Alpes (84), "
        "hors de vos régions (93)."]
    r = CliRunner().invoke(cli, ["--db", url, "detect", "--resolve-after", "0"])
    assert r.exit_code != 0 and "--resolve-after" in r.output
    r = CliRunner().invoke(cli, ["--db", url, "detect", "--resolve-after", "2"])
    assert r.exit_code == 0, r.output
