"""CPOM objectives, the control programme and the dialogue dossier over a small world
(services in 84 and 93, users of every role), on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from helpers import INDICATOR_COLUMNS, indicator_rows, write_csv  # noqa: E402
from world import make_world  # noqa: E402

from monitor.dialogue.objectives import service_objectives, territorial_steering  # noqa: E402
from monitor.dialogue.programme import get_programme, partner_export, programme_history, save_programme  # noqa: E402
from monitor.ingest.indicators import ingest_file  # noqa: E402
from monitor.ingest.objectives import load_objectives  # noqa: E402
from monitor.ingest.readers import InputFileError  # noqa: E402
from monitor.store.models import FollowUp, Objective, ProgrammeVersion, Quarantine  # noqa: E402
from monitor.vocabulary.errors import AccessDenied, InvalidAction  # noqa: E402

OBJ_COLUMNS = ["service_id", "indicator", "year", "target", "label"]


@pytest.fixture
def world(engine, tmp_path):
    w = make_world(engine, tmp_path)
    months = [f"{y}-{m:02d}" for y in (2024, 2025) for m in range(1, 13)]
    write_csv(tmp_path / "ind.csv", indicator_rows(w.services, months), INDICATOR_COLUMNS)
    ingest_file(engine, tmp_path / "ind.csv")
    return w


def _run(args, url):
    env = {k: v for k, v in os.environ.items() if k != "SPSTI_MONITOR_DB"}
    return subprocess.run([sys.executable, "-m", "monitor", "--db", url] + args, capture_output=True, text=True,
                          env=env, timeout=300)


def test_objectives_load_quarantines_bad_rows_with_line_and_french_reason(engine, world, tmp_path):
    s0, s1 = world.svc(0), world.svc(1)
    rows = [
        {"service_id": s0, "indicator": "vip_init_in_delay_rate", "year": 2025, "target": "0,80", "label": "VIP"},
        {"service_id": s0, "indicator": "vip_init_median_delay_days", "year": 2025, "target": 45},
        {"service_id": "12345678901234", "indicator": "vip_init_in_delay_rate", "year": 2025, "target": 0.8},
        {"service_id": s1, "indicator": "no_such_code", "year": 2025, "target": 1},
        {"service_id": s1, "indicator": "vip_init_in_delay_rate", "year": 2025, "target": 85},
        {"service_id": s1, "indicator": "reprise_within_8d_rate", "year": 2025, "target": 0.7},
        {"service_id": s1, "indicator": "reprise_within_8d_rate", "year": 2025, "target": 0.75},
        {"service_id": s1, "indicator": "amt_per_1000", "year": "deux mille", "target": 40},
        {"service_id": s1, "indicator": "amt_per_1000", "year": 2025, "target": "=1+1"},
    ]
    write_csv(tmp_path / "obj.csv", rows, OBJ_COLUMNS, sep=";")
    report = load_objectives(engine, tmp_path / "obj.csv")
    assert (report.inserted, report.updated, report.unchanged) == (2, 0, 0)
    reasons = dict(report.rejected)
    assert set(reasons) == {4, 5, 6, 7, 8, 9, 10}
    assert "SIRET invalide" in reasons[4]
    assert "indicateur inconnu" in reasons[5]
    assert "erreur d'unité" in reasons[6] and "pourcentage" in reasons[6]
    assert "doublon" in reasons[7] and "doublon" in reasons[8]
    assert "année illisible" in reasons[9]
    assert "formule" in reasons[10]
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(Objective)).scalar() == 2
        lines = sorted(c.execute(sa.select(Quarantine.row_number).where(
            Quarantine.reason_code.like("objective_%"))).scalars())
    assert lines == [4, 5, 6, 7, 8, 9, 10]
    # a later file changes a target; the same file again changes nothing
    write_csv(tmp_path / "obj2.csv", [dict(rows[0], target="0,82")], OBJ_COLUMNS)
    assert load_objectives(engine, tmp_path / "obj2.csv").updated == 1
    assert load_objectives(engine, tmp_path / "obj2.csv").unchanged == 1


def test_objectives_xlsx_and_unreadable_file(engine, world, tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(OBJ_COLUMNS)
    ws.append([world.svc(0), "reprise_within_8d_rate", 2025, 0.75, "Reprise"])
    wb.save(tmp_path / "obj.xlsx")
    assert load_objectives(engine, tmp_path / "obj.xlsx").inserted == 1
    (tmp_path / "bad.csv").write_text("service_id,year\n1,2\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="indicator, target"):
        load_objectives(engine, tmp_path / "bad.csv")


def test_attainment_on_both_worse_sides_and_pilotage(engine, world, tmp_path):
    sid = world.svc(0)
    # the helpers' VIP rate is about 82 % (lower is worse); no delay data -> not assessable
    write_csv(tmp_path / "obj.csv", [
        {"service_id": sid, "indicator": "vip_init_in_delay_rate", "year": 2025, "target": 0.5},
        {"service_id": sid, "indicator": "vip_init_in_delay_rate", "year": 2024, "target": 0.99},
        {"service_id": sid, "indicator": "pdp_cases_per_1000", "year": 2025, "target": 1000},
        {"service_id": sid, "indicator": "complaints_per_10k", "year": 2025, "target": 5},
    ], OBJ_COLUMNS)
    load_objectives(engine, tmp_path / "obj.csv")
    att = service_objectives(engine, "agent84@dreets.test", sid).set_index(["indicator", "year"])
    assert att.loc[("vip_init_in_delay_rate", 2025), "met"] is True
    assert att.loc[("vip_init_in_delay_rate", 2024), "met"] is False
    assert att.loc[("vip_init_in_delay_rate", 2025), "trend_fr"] in ("stable", "en amélioration", "en dégradation")
    assert att.loc[("pdp_cases_per_1000", 2025), "met"] is False       # lower is worse: far below 1,000 ‰
    assert att.loc[("complaints_per_10k", 2025), "status_fr"] == "pas de données"
    with pytest.raises(AccessDenied):
        service_objectives(engine, "agent93@dreets.test", sid)
    steer = territorial_steering(engine, "dgt@travail.test")
    vip = steer[(steer["indicator"] == "vip_init_in_delay_rate")].set_index("year")
    assert vip.loc[2025, "share_met"] == 1.0 and vip.loc[2024, "share_met"] == 0.0
    assert territorial_steering(engine, "agent93@dreets.test").empty


def test_programme_scope_save_audit_and_partner_export(engine, world):
    p = get_programme(engine, "agent84@dreets.test", "84", 2026, capacity=1)
    assert not p.saved and len(p.rows) == 3 and int(p.rows["selected"].sum()) == 1
    with pytest.raises(AccessDenied, match="hors de vos régions"):
        get_programme(engine, "agent93@dreets.test", "84", 2026)
    with pytest.raises(AccessDenied, match="lecture seule"):
        save_programme(engine, "dgt@travail.test", "84", 2026, 1)
    with pytest.raises(AccessDenied, match="responsable"):
        save_programme(engine, "agent84@dreets.test", "84", 2026, 1)
    first = p.rows["service_id"].iloc[0]
    last = p.rows["service_id"].iloc[-1]
    with pytest.raises(InvalidAction, match="Motif obligatoire"):
        save_programme(engine, "manager84@dreets.test", "84", 2026, 1, {last: (True, " ")})
    saved = save_programme(engine, "manager84@dreets.test", "84", 2026, 1,
                           {last: (True, "Signalement de l'ARS"), first: (False, "Contrôlé en 2025 sur place")},
                           comment="Arrêté en réunion de pôle")
    assert saved.saved and saved.saved_by == "manager84@dreets.test"
    sel = dict(zip(saved.rows["service_id"], saved.rows["selected"]))
    assert sel[last] is True and sel[first] is False
    # the saved programme is what everyone reads now, national level included
    again = get_programme(engine, "dgt@travail.test", "84", 2026, capacity=3)
    assert again.saved and dict(zip(again.rows["service_id"], again.rows["selected"])) == sel
    hist = programme_history(engine, "manager84@dreets.test", "84", 2026)
    assert len(hist) == 1 and hist[0]["changes"] == 2 and hist[0]["comment"] == "Arrêté en réunion de pôle"
    # the partner export holds the programme's columns for the selected services only
    text = partner_export(again)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["service_id"] for r in rows] == [last]
    assert set(rows[0]) == {"rank", "service_id", "service_name", "score", "selected", "reasons"}
    assert "ARS" not in text and "manager84" not in text
    # saves are append-only
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        with engine.begin() as c:
            c.execute(sa.update(ProgrammeVersion).values(capacity=9))


def test_last_control_lowers_the_score(engine, world):
    before = get_programme(engine, None, "84", 2026).rows.set_index("service_id")
    sid = world.svc(2)
    from datetime import date, datetime, timezone

    with engine.begin() as c:
        c.execute(sa.insert(FollowUp).values(service_id=sid, kind="controle_sur_place", status="terminee",
                                             created_by="x", due_date=date(2025, 6, 1),
                                             created_at=datetime(2025, 5, 1, tzinfo=timezone.utc),
                                             updated_at=datetime(2025, 5, 1, tzinfo=timezone.utc),
                                             closed_at=datetime(2025, 6, 1, tzinfo=timezone.utc), version=1))
    after = get_programme(engine, None, "84", 2026).rows.set_index("service_id")
    assert after.loc[sid, "score"] == before.loc[sid, "score"] - 5.0     # never controlled (5) -> 0 full year
    assert "dernier contrôle il y a moins d'un an (0 pt)" in after.loc[sid, "reasons"]


def test_cli_programme_objectives_and_dossier(db_url, engine, world, tmp_path):
    r = _run(["programme", "--region", "84", "--year", "2026", "--capacity", "2", "--format", "json",
              "--as", "agent84@dreets.test"], db_url)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["rank"] for x in rows] == [1, 2, 3]
    assert [x["selected"] for x in rows] == [True, True, False]
    assert set(rows[0]) == {"rank", "service_id", "service_name", "score", "selected", "reasons"}
    r = _run(["programme", "--region", "84", "--year", "2026", "--as", "agent93@dreets.test"], db_url)
    assert r.returncode == 1 and "Accès refusé" in r.stderr and "Traceback" not in r.stderr
    r = _run(["programme", "--region", "84", "--year", "2026", "--pdf", str(tmp_path / "prog.pdf")], db_url)
    assert r.returncode == 0 and r.stdout.startswith("rank,service_id,service_name,score,selected,reasons")
    assert ",true," in r.stdout and (tmp_path / "prog.pdf").read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", str(tmp_path / "prog.pdf"), "-"], capture_output=True, text=True).stdout
    assert "Programme de contrôle 2026" in text and "Pondérations du score de risque" in text
    # objectives: exit 0 with rejected rows, 2 when the file cannot be read
    write_csv(tmp_path / "obj.csv", [{"service_id": world.svc(0), "indicator": "nope", "year": 2025, "target": 1}],
              OBJ_COLUMNS)
    r = _run(["objectives", "load", str(tmp_path / "obj.csv")], db_url)
    assert r.returncode == 0 and "rejetés 1" in r.stdout and "ligne 2 : code d'indicateur inconnu" in r.stdout
    r = _run(["objectives", "load", str(tmp_path / "missing.csv")], db_url)
    assert r.returncode == 2 and "introuvable" in r.stderr
    # dossier: refused outside the region, no file
    out = tmp_path / "dossier.pdf"
    r = _run(["dossier", world.svc(0), "--out", str(out), "--as", "agent93@dreets.test"], db_url)
    assert r.returncode == 1 and "Accès refusé" in r.stderr and not out.exists()
    assert not list(tmp_path.glob("dossier.pdf*"))


def test_dossier_pdf_text(engine, world, tmp_path):
    from monitor.dialogue.dossier_pdf import write_dossier

    sid = world.svc(0)
    write_csv(tmp_path / "obj.csv", [
        {"service_id": sid, "indicator": "vip_init_in_delay_rate", "year": 2025, "target": 0.99,
         "label": "Objectif VIP du CPOM"}], OBJ_COLUMNS)
    load_objectives(engine, tmp_path / "obj.csv")
    out = write_dossier(engine, "dgt@travail.test", sid, tmp_path / "d.pdf")
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, timeout=60).stdout
    first = text.split("\f")[0]
    assert "Dossier de dialogue de gestion" in first and "Points à aborder" in first
    assert "Service test 0" in first and sid in first
    assert "Objectif non atteint en 2025 : Taux de VIP initiales dans le délai" in first
    for section in ("Identité du service", "Agrément et certification : calendrier", "Indicateurs face aux pairs",
                    "Objectifs du CPOM et atteinte", "Alertes de la période et leurs suites",
                    "Qualité des données transmises"):
        assert section in text, section
    assert "Fin de l'agrément" in text and "Objectif VIP du CPOM" in text
    with pytest.raises(AccessDenied):
        write_dossier(engine, "agent93@dreets.test", sid, tmp_path / "no.pdf")
    assert not (tmp_path / "no.pdf").exists()
