"""Ingest of indicator files: every way a file or a row can be wrong gets one clear French
reason, accepted rows become versions, and nothing already stored is ever lost or changed.

Every test that touches the database runs on SQLite and PostgreSQL (``engine`` fixture)."""
from __future__ import annotations

import csv
import datetime
import json
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from helpers import (INDICATOR_COLUMNS, REGISTER_COLUMNS, indicator_rows, register_rows,  # noqa: E402
                     siret, write_csv)

from monitor.ingest import indicators as ingest_mod  # noqa: E402
from monitor.ingest.indicators import REASONS, ingest_file, ingest_files  # noqa: E402
from monitor.store.models import Observation, Quarantine, Service, ServiceDepartment, Submission  # noqa: E402
from monitor.vocabulary.periods import month_index  # noqa: E402
from monitor.ingest.readers import InputFileError, formula_mask, parse_numbers, read_table  # noqa: E402
from monitor.ingest.register import load_register  # noqa: E402

FORMULA = '=HYPERLINK("http://x","y")'
MONTHS = ["2025-01", "2025-02"]


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def world(engine, tmp_path):
    """A register of 4 services and two months of accepted data (24 observations)."""
    svcs = register_rows(4)
    load_register(engine, write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS))
    base = indicator_rows(svcs, MONTHS)
    rep = ingest_file(engine, write_csv(tmp_path / "base.csv", base, INDICATOR_COLUMNS))
    assert (rep.accepted, rep.rejected, rep.unchanged) == (len(base), 0, 0)
    return SimpleNamespace(engine=engine, tmp=tmp_path, svcs=svcs, sids=[s["service_id"] for s in svcs],
                           base=base)


def _rows(conn, table) -> dict[int, tuple]:
    out = {}
    for r in conn.execute(sa.select(table)).mappings():
        d = dict(r)
        if "raw" in d:
            d["raw"] = json.dumps(d["raw"], sort_keys=True, ensure_ascii=False)
        out[d["id"]] = tuple(sorted(d.items()))
    return out


def snapshot(engine) -> dict:
    with engine.connect() as c:
        return {
            "observations": _rows(c, Observation.__table__),
            "quarantine": _rows(c, Quarantine.__table__),
            "services": sorted(tuple(r) for r in c.execute(sa.select(Service.__table__))),
            "departments": sorted(tuple(r) for r in c.execute(sa.select(ServiceDepartment.__table__))),
        }


def assert_preserved(before: dict, after: dict, superseded: set[int] = frozenset()) -> None:
    """Every stored row is still there, unchanged (a superseded observation may only lose is_current)."""
    assert after["services"] == before["services"]
    assert after["departments"] == before["departments"]
    for table in ("observations", "quarantine"):
        for rid, row in before[table].items():
            assert rid in after[table], f"{table} row {rid} lost"
            if rid in superseded:
                old, new = dict(row), dict(after[table][rid])
                assert old.pop("is_current") is True and new.pop("is_current") is False
                assert old == new
            else:
                assert after[table][rid] == row, f"{table} row {rid} changed"


def observations(engine, **where) -> list[dict]:
    t = Observation.__table__
    q = sa.select(t).order_by(t.c.service_id, t.c.indicator, t.c.period, t.c.version)
    for k, v in where.items():
        q = q.where(t.c[k] == v)
    with engine.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


def quarantined(engine, submission_id: int) -> dict[int, dict]:
    t = Quarantine.__table__
    with engine.connect() as c:
        return {r["row_number"]: dict(r) for r in
                c.execute(sa.select(t).where(t.c.submission_id == submission_id)).mappings()}


def row(sid, period, indicator, value, numerator="", denominator="") -> dict:
    return {"service_id": sid, "period": period, "indicator": indicator, "value": value,
            "numerator": numerator, "denominator": denominator}


def check_counts(rep) -> None:
    assert rep.accepted + rep.rejected + rep.unchanged == rep.rows


# --------------------------------------------------------------------------- row-level battery


def test_every_faulty_row_is_quarantined_with_its_reason_and_the_rest_accepted(world):
    eng, s = world.engine, world.sids
    bad_siret = s[0][:-1] + str((int(s[0][-1]) + 1) % 10)
    good = [row(sid, "2025-03", "vip_init_in_delay_rate", "0.8", 80, 100) for sid in s] + [
        row(s[0], "2025-03", "nurse_fte", "3,5"),
        row(s[1], "2025-03", "nurse_fte", "12"),
        row(s[1], "2025-03", "sir_overdue_rate", "0.84", 837, 1000),          # rounded: within tolerance
        row(s[2], "2025-03", "pdp_cases_per_1000", "2.5", 50, 20000),
    ]
    bad = [  # (row, reason code, fragment of the French reason)
        (row(siret(99), "2025-03", "nurse_fte", "3"), "unknown_service", "registre"),
        (row(bad_siret, "2025-03", "nurse_fte", "3"), "invalid_siret", "SIRET invalide"),
        (row("1234", "2025-03", "nurse_fte", "3"), "invalid_siret", "SIRET invalide"),
        (row(s[0], "2025-03", "vip_rate", "0.8"), "unknown_indicator", "indicateur inconnu"),
        (row(s[2], "2025-03", "nurse_fte", "abc"), "bad_number", "illisible"),
        (row(s[3], "2025-03", "nurse_fte", ""), "bad_number", "manquante"),
        (row(s[0], "2025-03", "reprise_within_8d_rate", "0.5", "douze", 24), "bad_number", "illisible"),
        (row(s[1], "2025-03", "reprise_within_8d_rate", "0.05", -5, 100), "negative", "négatif"),
        (row(s[2], "2025-03", "physician_fte", "-1"), "negative", "négatif"),
        (row(s[2], "2025-03", "sir_overdue_rate", "84"), "probable_percent", "pourcentage"),
        (row(s[3], "2025-03", "sir_overdue_rate", "84,0", 84, 100), "probable_percent", "pourcentage"),
        (row(s[3], "2025-03", "reprise_within_8d_rate", "1", 120, 100), "num_gt_den", "numérateur supérieur"),
        (row(s[0], "2025-13", "physician_fte", "3"), "bad_period", "période illisible"),
        (row(s[1], "mars 2025", "physician_fte", "3"), "bad_period", "période illisible"),
        (row(s[2], "", "nurse_fte", "3"), "bad_period", "période illisible"),
        (row(s[0], "2025-03", "sir_overdue_rate", "0.5", 84, 100), "inconsistent", "incohérente"),
        (row(s[3], "2025-03", "pdp_cases_per_1000", "9", 50, 20000), "inconsistent", "incohérente"),
        (row(s[3], "2025-03", "cotisation_vs_cmn_ratio", "50"), "out_of_range", "hors de la plage"),
        (row(s[0], "2025-03", "physician_fte", FORMULA), "formula", "formule"),
        (row(FORMULA, "2025-03", "physician_fte", "3"), "formula", "formule"),
        (row(s[1], "2025-03", "@SUM(A1)", "3"), "formula", "formule"),
        (row(s[1], "2025-03", "amt_per_1000", "1", "+A1", 1000), "formula", "formule"),
        (row(s[2], "2025-03", "amt_per_1000", "-3+1"), "formula", "formule"),
        (row(s[3], "2025-03", "amt_per_1000", " =1+1"), "formula", "formule"),
    ]
    rows = good[:4] + [b[0] for b in bad] + good[4:]
    path = write_csv(world.tmp / "m03.csv", rows, INDICATOR_COLUMNS)
    with open(path, "a", encoding="utf-8", newline="") as fh:     # rows with a wrong number of fields
        fh.write(f"{s[2]},2025-03,nurse_fte,4,,,en trop,encore\r\n")
        fh.write(f"{s[3]},2025-03\r\n")
    shape_lines = [len(rows) + 2, len(rows) + 3]
    before = snapshot(eng)

    rep = ingest_file(eng, path)

    check_counts(rep)
    assert (rep.rows, rep.accepted, rep.rejected, rep.unchanged) == (len(rows) + 2, len(good), len(bad) + 2, 0)
    expected = {i + 2: code for i, r in enumerate(rows) for b, code, _ in bad if r is b}
    expected.update({line: "bad_shape" for line in shape_lines})
    assert rep.reasons == dict(Counter(expected.values()))
    q = quarantined(eng, rep.submission_id)
    assert {line: r["reason_code"] for line, r in q.items()} == expected
    fragments = {code: frag for _, code, frag in bad} | {"bad_shape": "nombre de colonnes"}
    for line, r in q.items():
        assert r["reason"] == REASONS[r["reason_code"]]
        assert fragments[r["reason_code"]] in r["reason"], r
    # the raw cells are kept for the data steward; rows of the wrong shape keep all their cells
    raws = {line: r["raw"] for line, r in q.items()}
    assert raws[rows.index(bad[18][0]) + 2]["value"] == FORMULA
    assert raws[shape_lines[0]] == {"cells": [s[2], "2025-03", "nurse_fte", "4", "", "", "en trop", "encore"]}
    # a faulty value from a known service is attributed to its cell (data-quality detectors use it)
    pct = q[rows.index(bad[9][0]) + 2]
    assert (pct["service_id"], pct["indicator"], pct["period"], pct["month_index"]) == \
        (s[2], "sir_overdue_rate", "2025-03", month_index("2025-03"))
    # a formula is never kept outside the raw cells
    assert q[rows.index(bad[19][0]) + 2]["service_id"] is None
    assert q[rows.index(bad[20][0]) + 2]["indicator"] is None

    stored = observations(eng, period="2025-03")
    assert sorted((o["service_id"], o["indicator"]) for o in stored) == \
        sorted((r["service_id"], r["indicator"]) for r in good)
    assert all(o["version"] == 1 and o["is_current"] and o["submission_id"] == rep.submission_id for o in stored)
    by_cell = {(o["service_id"], o["indicator"]): o for o in stored}
    assert by_cell[(s[0], "nurse_fte")]["value"] == 3.5
    assert (by_cell[(s[1], "sir_overdue_rate")]["numerator"], by_cell[(s[1], "sir_overdue_rate")]["denominator"]) == (837, 1000)
    assert by_cell[(s[1], "nurse_fte")]["numerator"] is None
    with eng.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(Observation)
                        .where(Observation.service_id.like("%HYPERLINK%"))) == 0
    assert "probablement saisie en pourcentage (84 au lieu de 0,84)" in REASONS["probable_percent"]
    assert_preserved(before, snapshot(eng))
    text = rep.summary_fr()
    assert "acceptées 8" in text and f"rejetées {len(bad) + 2}" in text
    assert "probablement saisie en pourcentage" in text and "formule" in text


def test_many_rejected_rows_keep_their_raw_cells_and_reasons(world):
    eng, s = world.engine, world.sids
    rows = [row(s[i % 4], f"{2000 + i % 25}-{i % 12 + 1:02d}", "taux_inconnu", f"0,{i:04d}") for i in range(1500)]
    rows += [row(s[0], "2025-03", "nurse_fte", "é")]
    before = snapshot(eng)
    rep = ingest_file(eng, write_csv(world.tmp / "many.csv", rows, INDICATOR_COLUMNS))
    assert (rep.accepted, rep.rejected) == (0, 1501)
    assert rep.reasons == {"unknown_indicator": 1500, "bad_number": 1}
    q = quarantined(eng, rep.submission_id)
    assert len(q) == 1501
    assert q[2]["raw"] == {"service_id": s[0], "period": "2000-01", "indicator": "taux_inconnu",
                           "value": "0,0000", "numerator": "", "denominator": ""}
    assert q[1501]["raw"]["value"] == "0,1499" and q[1501]["month_index"] == month_index("2024-12")
    assert q[1502]["raw"]["value"] == "é" and q[1502]["reason"] == REASONS["bad_number"]
    assert all(r["created_at"] is not None and r["service_id"] in s for r in q.values())
    assert_preserved(before, snapshot(eng))


# --------------------------------------------------------------------------- file-level failures


def _file_cases(tmp: Path, sid: str) -> list[tuple[str, Path | str, str]]:
    """(label, path, fragment of the message) for files that cannot be read at all."""
    cases = []
    p = tmp / "cols.csv"
    p.write_text("service_id;periode;indicateur;value\n%s;2025-03;nurse_fte;3\n" % sid, encoding="utf-8")
    cases.append(("missing columns", p, "colonne(s) obligatoire(s) absente(s) : period, indicator"))
    p = tmp / "zero.csv"
    p.write_bytes(b"")
    cases.append(("0 bytes", p, "fichier vide"))
    p = tmp / "blank.csv"
    p.write_bytes(b"\r\n  \n\n")
    cases.append(("blank lines", p, "fichier vide"))
    p = tmp / "image.csv"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20)
    cases.append(("PNG renamed .csv", p, "fichier binaire"))
    p = tmp / "random.csv"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    cases.append(("random bytes renamed .csv", p, "fichier binaire"))
    p = tmp / "late_nul.csv"
    p.write_bytes(("service_id,period,indicator,value\n" + f"{sid},2025-03,nurse_fte,3\n" * 2000).encode()
                  + f"{sid}\x00,2025-04,nurse_fte,3\n".encode())
    cases.append(("NUL byte after 8 KiB", p, "fichier binaire"))
    p = tmp / "old.xls"
    p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    cases.append(("Excel 97 .xls", p, "Excel 97-2003"))
    p = tmp / "fake.xlsx"
    p.write_text("service_id,period,indicator,value\n", encoding="utf-8")
    cases.append(("text renamed .xlsx", p, "XLSX illisible"))
    p = tmp / "dupcols.csv"
    p.write_text(f"service_id,period,indicator,value,value\n{sid},2025-03,nurse_fte,3,4\n", encoding="utf-8")
    cases.append(("duplicated column", p, "colonne(s) en double dans l'en-tête : value"))
    p = tmp / "badbom.csv"
    p.write_bytes(b"\xef\xbb\xbfservice_id,period,indicator,value\n" + sid.encode() + b",2025-03,nurse_fte,3\xe9\n")
    cases.append(("BOM but not UTF-8", p, "ligne 2"))
    cases.append(("missing path", str(tmp / "absent" / "nowhere.csv"), "fichier introuvable"))
    cases.append(("directory", str(tmp), "dossier"))
    return cases


def test_unreadable_files_fail_with_one_clear_message_and_change_nothing(world):
    eng = world.engine
    cases = _file_cases(world.tmp, world.sids[0])
    before = snapshot(eng)
    with eng.connect() as c:
        subs_before = c.scalar(sa.select(sa.func.count()).select_from(Submission))
    for label, path, fragment in cases:
        with pytest.raises(InputFileError) as exc:
            ingest_file(eng, path)
        msg = str(exc.value)
        assert fragment in msg, (label, msg)
        assert "\n" not in msg and Path(path).name in msg, (label, msg)
    assert_preserved(before, snapshot(eng))
    assert snapshot(eng) == before
    # through ingest_files (what the CLI calls) each failure is recorded and the next file still runs
    good = write_csv(world.tmp / "good.csv", [row(world.sids[0], "2025-03", "nurse_fte", "3")], INDICATOR_COLUMNS)
    results = list(ingest_files(eng, [p for _, p, _ in cases[:3]] + [good] + [p for _, p, _ in cases[3:]]))
    assert [isinstance(r, InputFileError) for _, r in results] == [True] * 3 + [False] + [True] * (len(cases) - 3)
    assert results[3][1].accepted == 1
    with eng.connect() as c:
        subs = c.execute(sa.select(Submission.status, Submission.error).where(Submission.id > 0)
                         .order_by(Submission.id)).all()[subs_before:]
    assert [st for st, _ in subs] == ["failed"] * 3 + ["ingested"] + ["failed"] * (len(cases) - 3)
    assert all(err and "Traceback" not in err for st, err in subs if st == "failed")
    after = snapshot(eng)
    assert len(after["observations"]) == len(before["observations"]) + 1
    assert after["quarantine"] == before["quarantine"]
    # a header and no data is a readable file with nothing to do (not an error)
    p = world.tmp / "header.csv"
    p.write_text(";".join(INDICATOR_COLUMNS) + "\r\n", encoding="utf-8")
    rep = ingest_file(eng, p)
    assert (rep.rows, rep.accepted, rep.rejected, rep.unchanged) == (0, 0, 0, 0)
    assert "aucune ligne de données" in rep.summary_fr()
    assert snapshot(eng) == after


def test_failure_while_writing_rolls_everything_back(world, monkeypatch):
    eng, s = world.engine, world.sids
    rows = [row(s[0], "2025-01", "workers_followed", 1), row(s[1], "2025-03", "nurse_fte", "x"),
            row(s[2], "2025-03", "nurse_fte", "4")]
    path = write_csv(world.tmp / "boom.csv", rows, INDICATOR_COLUMNS)
    before = snapshot(eng)
    with eng.connect() as c:
        subs = c.scalar(sa.select(sa.func.count()).select_from(Submission))

    def boom(*a, **k):
        raise RuntimeError("disque plein")

    monkeypatch.setattr(ingest_mod, "bulk_insert", boom)
    with pytest.raises(RuntimeError):
        ingest_file(eng, path)
    assert snapshot(eng) == before
    with eng.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(Submission)) == subs
    monkeypatch.undo()
    rep = ingest_file(eng, path)               # the same file is not "already received"
    assert (rep.accepted, rep.rejected, rep.duplicate_file) == (2, 1, False)


# --------------------------------------------------------------------------- duplicates, versions


def test_same_file_twice_changes_nothing_and_is_reported_unchanged(world):
    eng = world.engine
    path = world.tmp / "base.csv"
    before = snapshot(eng)
    rep = ingest_file(eng, path)
    assert rep.duplicate_file and (rep.accepted, rep.rejected, rep.unchanged) == (0, 0, len(world.base))
    assert "déjà reçu" in rep.summary_fr() and f"inchangées {len(world.base)}" in rep.summary_fr()
    assert snapshot(eng) == before
    # the same data exported again differently (';', decimal comma, CRLF): every row unchanged
    p2 = world.tmp / "base_fr.csv"
    with open(p2, "w", encoding="cp1252", newline="") as fh:
        w = csv.writer(fh, delimiter=";", lineterminator="\r\n")
        w.writerow(INDICATOR_COLUMNS)
        for r in world.base:
            w.writerow([str(r[c]).replace(".", ",") for c in INDICATOR_COLUMNS])
    rep = ingest_file(eng, p2)
    assert not rep.duplicate_file
    assert (rep.accepted, rep.rejected, rep.unchanged) == (0, 0, len(world.base))
    assert snapshot(eng) == before


def test_conflicting_duplicates_are_both_quarantined_identical_ones_collapse(world):
    eng, s = world.engine, world.sids
    rows = [
        row(s[0], "2025-03", "nurse_fte", "3"),                     # 2: conflicting with line 3
        row(s[0], "2025-03", "nurse_fte", "4"),                     # 3
        row(s[1], "2025-03", "nurse_fte", "5"),                     # 4: identical with line 5
        row(s[1], "2025-03", "nurse_fte", "5,0"),                   # 5
        row(s[2], "2025-Q2", "physician_fte", "7"),                 # 6: same cell as line 7 (T = Q)
        row(s[2], "2025-T2", "physician_fte", "7.5"),               # 7
        row(s[3], "2025-01", "workers_followed", "1"),              # 8: conflicts with 9, cell already stored
        row(s[3], "2025-01", "workers_followed", "2"),              # 9
        row(s[3], "2025-03", "sir_overdue_rate", "0.1", 10, 100),   # 10: same value, different counts
        row(s[3], "2025-03", "sir_overdue_rate", "0.1", 20, 200),   # 11
        row(s[2], "2025-03", "nurse_fte", "6"),                     # 12: plain good rows
        row(s[3], "2025-03", "nurse_fte", "8"),                     # 13
    ]
    before = snapshot(eng)
    rep = ingest_file(eng, write_csv(world.tmp / "dup.csv", rows, INDICATOR_COLUMNS))
    check_counts(rep)
    assert (rep.accepted, rep.rejected, rep.unchanged) == (3, 8, 1)
    assert rep.reasons == {"conflicting_duplicate": 8}
    q = quarantined(eng, rep.submission_id)
    assert sorted(q) == [2, 3, 6, 7, 8, 9, 10, 11]
    assert all(r["reason_code"] == "conflicting_duplicate" and "doublon contradictoire" in r["reason"]
               for r in q.values())
    assert {q[6]["period"], q[7]["period"]} == {"2025-Q2"}
    stored = observations(eng, period="2025-03")
    assert [(o["service_id"], o["indicator"], o["value"]) for o in stored] == [
        (s[1], "nurse_fte", 5.0), (s[2], "nurse_fte", 6.0), (s[3], "nurse_fte", 8.0)]
    assert observations(eng, period="2025-Q2") == []
    (wf,) = observations(eng, service_id=s[3], indicator="workers_followed", period="2025-01")
    assert wf["version"] == 1 and wf["is_current"] and wf["value"] == world.svcs[3]["workers_followed"]
    assert_preserved(before, snapshot(eng))


def test_correction_in_a_later_file_is_a_new_current_version(world):
    eng, s = world.engine, world.sids
    cell = dict(service_id=s[1], indicator="vip_init_in_delay_rate", period="2025-01")
    (v1,) = observations(eng, **cell)
    other = [r for r in world.base if r["service_id"] == s[2] and r["period"] == "2025-02"][0]
    before = snapshot(eng)
    rows = [row(s[1], "2025-01", "vip_init_in_delay_rate", "0.5", 5, 10),
            row(s[2], "2025-02", other["indicator"], other["value"], other["numerator"], other["denominator"])]
    rep = ingest_file(eng, write_csv(world.tmp / "corr1.csv", rows, INDICATOR_COLUMNS))
    assert (rep.accepted, rep.rejected, rep.unchanged) == (1, 0, 1)
    versions = observations(eng, **cell)
    assert [(o["version"], o["is_current"], o["value"]) for o in versions] == [
        (1, False, v1["value"]), (2, True, 0.5)]
    assert versions[0]["submission_id"] == v1["submission_id"] and versions[1]["submission_id"] == rep.submission_id
    assert (versions[1]["numerator"], versions[1]["denominator"], versions[1]["row_number"]) == (5, 10, 2)
    assert_preserved(before, snapshot(eng), superseded={v1["id"]})

    # a rejected correction leaves the current version alone
    before = snapshot(eng)
    rep = ingest_file(eng, write_csv(world.tmp / "corr_bad.csv",
                                     [row(s[1], "2025-01", "vip_init_in_delay_rate", "55")], INDICATOR_COLUMNS))
    assert (rep.accepted, rep.rejected) == (0, 1)
    assert snapshot(eng)["observations"] == before["observations"]

    # a second correction: three versions, only the newest current
    rep = ingest_file(eng, write_csv(world.tmp / "corr2.csv",
                                     [row(s[1], "2025-01", "vip_init_in_delay_rate", "0,6", 6, 10)],
                                     INDICATOR_COLUMNS))
    assert rep.accepted == 1
    assert [(o["version"], o["is_current"], o["value"]) for o in observations(eng, **cell)] == [
        (1, False, v1["value"]), (2, False, 0.5), (3, True, 0.6)]
    with eng.connect() as c:
        n_current = c.execute(sa.select(sa.func.count()).select_from(Observation)
                              .where(Observation.is_current.is_(True))).scalar()
    assert n_current == len(world.base)


# --------------------------------------------------------------------------- formats


def test_french_export_cp1252_semicolon_decimal_comma_and_utf8_bom(world):
    eng, s = world.engine, world.sids
    p = world.tmp / "export_fr.csv"
    # extra columns, unnamed trailing columns (";;") and cp1252-only characters (–, €, «)
    lines = ["service_id;période_note;period;indicator;value;numerator;denominator;commentaire;;",
             f"{s[0]};;2025-03;vip_init_in_delay_rate;0,84;84;100;Déclaré par Mme Lefèvre – 2e envoi;;",
             f"{s[1]};;2025-03;workers_per_physician_fte;1 523,5;30 470;20;effectif « suivi »;;",
             f"{s[2]};;2025-03;nurse_fte;1.234,5;;;;;",
             f'{s[3]};;2025-03;pdp_cases_per_1000;"2,5";50;20000;€;;']
    p.write_bytes("\r\n".join(lines).encode("cp1252") + b"\r\n")
    table = read_table(p, ingest_mod.REQUIRED)
    assert (table.encoding, table.separator) == ("cp1252", ";")
    before = snapshot(eng)
    rep = ingest_file(eng, p)
    assert (rep.accepted, rep.rejected) == (4, 0), rep.summary_fr()
    got = {o["service_id"]: (o["value"], o["numerator"], o["denominator"])
           for o in observations(eng, period="2025-03")}
    assert got == {s[0]: (0.84, 84, 100), s[1]: (1523.5, 30470, 20), s[2]: (1234.5, None, None),
                   s[3]: (2.5, 50, 20000)}
    assert_preserved(before, snapshot(eng))
    # UTF-8 with a BOM (Excel's "CSV UTF-8"), comma-separated
    p = world.tmp / "bom.csv"
    write_csv(p, [row(s[0], "2025-04", "nurse_fte", "2.5"), row(s[1], "2025-04", "nurse_fte", "1")],
              INDICATOR_COLUMNS, encoding="utf-8-sig")
    assert p.read_bytes().startswith(b"\xef\xbb\xbfservice_id")
    assert read_table(p, ingest_mod.REQUIRED).encoding == "utf-8-sig"
    rep = ingest_file(eng, p)
    assert (rep.accepted, rep.rejected) == (2, 0)
    assert [o["value"] for o in observations(eng, period="2025-04")] == [2.5, 1.0]


def test_xlsx_file(world):
    openpyxl = pytest.importorskip("openpyxl")
    eng, s = world.engine, world.sids
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Service_ID", "period", "indicator", "value", "numerator", "denominator"])   # row 1
    ws.append([int(s[0]), "2025-03", "vip_init_in_delay_rate", 0.84, 84, 100])           # 2: numbers
    ws.append([s[1], datetime.datetime(2025, 3, 1), "nurse_fte", "2,5", None, None])     # 3: date period
    ws.append([s[2], "2025-T2", "physician_fte", 7, None, None])                         # 4: quarter
    ws.append([None] * 6)                                                                # 5: empty
    ws.append([s[3], "2025", "cotisation_vs_cmn_ratio", 1.05])                           # 6: short row
    ws.append([s[0], "2025-03", "nurse_fte", FORMULA])                                   # 7: formula
    ws.append([FORMULA, "2025-03", "nurse_fte", 3])                                      # 8
    ws.append([s[1], "2025-03", "vip_init_in_delay_rate", 84])                           # 9: percent
    ws.append([s[2], "2025-03", "nurse_fte", 3, None, None, "en trop"])                  # 10: bad shape
    p = world.tmp / "indicateurs.xlsx"
    wb.save(p)
    before = snapshot(eng)
    rep = ingest_file(eng, p)
    check_counts(rep)
    assert (rep.accepted, rep.rejected) == (4, 4)
    assert {line: r["reason_code"] for line, r in quarantined(eng, rep.submission_id).items()} == {
        7: "formula", 8: "formula", 9: "probable_percent", 10: "bad_shape"}
    got = {(o["service_id"], o["period"], o["period_kind"]): (o["value"], o["numerator"], o["row_number"])
           for o in observations(eng) if o["submission_id"] == rep.submission_id}
    assert got == {(s[0], "2025-03", "M"): (0.84, 84, 2), (s[1], "2025-03", "M"): (2.5, None, 3),
                   (s[2], "2025-Q2", "Q"): (7.0, None, 4), (s[3], "2025", "Y"): (1.05, None, 6)}
    assert_preserved(before, snapshot(eng))


def test_all_period_forms_are_stored_canonically(world):
    eng, s = world.engine, world.sids
    rows = [row(s[0], "2025-04", "nurse_fte", 1), row(s[0], "2025-Q2", "physician_fte", 2),
            row(s[0], "2025-T3", "physician_fte", 3), row(s[0], "2024", "physician_fte", 4),
            row(s[0], "2025-5", "nurse_fte", 5), row(s[0], "2025-06-01", "nurse_fte", 6),
            row(s[0], "2025/07", "nurse_fte", 7)]
    rep = ingest_file(eng, write_csv(world.tmp / "periods.csv", rows, INDICATOR_COLUMNS))
    assert (rep.accepted, rep.rejected) == (7, 0)
    got = {o["value"]: (o["period"], o["period_kind"], o["month_index"])
           for o in observations(eng, service_id=s[0]) if o["submission_id"] == rep.submission_id}
    assert got == {1: ("2025-04", "M", month_index("2025-04")), 2: ("2025-Q2", "Q", month_index("2025-06")),
                   3: ("2025-Q3", "Q", month_index("2025-09")), 4: ("2024", "Y", month_index("2024-12")),
                   5: ("2025-05", "M", month_index("2025-05")), 6: ("2025-06", "M", month_index("2025-06")),
                   7: ("2025-07", "M", month_index("2025-07"))}


# --------------------------------------------------------------------------- units (no database)


def test_parse_numbers_french_and_english():
    values = ["0,84", "0.84", "1 234,5", "1\u00a0234,5", "1\u202f234,5", "1.234,5", "1,234.5", "1,234,567.25",
              "84", "-3", "+2", "1e3", "2,5E-2", ".5", "", "  ", "abc", "1.234.567", "12,3,4", "nan", "inf",
              "1e999", "84 %", "0x10", "١٢"]
    expected = [0.84, 0.84, 1234.5, 1234.5, 1234.5, 1234.5, 1234.5, 1234567.25,
                84.0, -3.0, 2.0, 1000.0, 0.025, 0.5] + [None] * 11
    got = parse_numbers(pd.Series(values, index=range(5, 5 + len(values))))
    assert list(got.index) == list(range(5, 5 + len(values)))
    assert [None if pd.isna(v) else round(v, 10) for v in got] == expected
    many = parse_numbers(pd.Series(["0,5", "2"] * 5000))
    assert many.dtype == float and many.sum() == 12500.0


def test_formula_mask():
    df = pd.DataFrame({"a": ["=1+1", "@SUM(A1)", " =x", "+A1", "-B2", "-3", "+2,5", "- 4", "3", "", "a=b"],
                       "b": [""] * 11})
    assert formula_mask(df, ["a", "b", "absent"]).tolist() == [True] * 5 + [False] * 6


# --------------------------------------------------------------------------- volume


def realistic_rows(services: list[dict], n_rows: int, seed: int = 0) -> list[tuple]:
    """A national panel in the exchange format: every catalogue indicator, monthly, counts behind
    proportions and rates, French decimal commas on proportions."""
    rng = np.random.default_rng(seed)
    out: list[tuple] = []
    year, month = 2015, 1
    while True:
        period = f"{year:04d}-{month:02d}"
        for s in services:
            w = int(s["workers_followed"])
            sid = s["service_id"]
            for code in ("vip_init_in_delay_rate", "sir_overdue_rate", "reprise_within_8d_rate"):
                den = int(rng.integers(50, 500))
                num = int(rng.binomial(den, 0.8))
                out.append((sid, period, code, f"{num / den:.4f}".replace(".", ","), num, den))
            for code, scale, rate in (("pdp_cases_per_1000", 1000, 3e-4), ("prereprise_per_1000", 1000, 1e-3),
                                      ("amt_per_1000", 1000, 2e-3), ("complaints_per_10k", 10000, 1e-4)):
                num = int(rng.poisson(w * rate))
                out.append((sid, period, code, f"{scale * num / w:.4f}", num, w))
            fte = round(float(rng.uniform(5, 50)), 1)
            out.append((sid, period, "workers_per_physician_fte", f"{w / fte:.2f}", w, fte))
            out.append((sid, period, "physician_fte", f"{fte}", "", ""))
            out.append((sid, period, "nurse_fte", f"{rng.uniform(2, 40):.1f}", "", ""))
            out.append((sid, period, "vip_init_median_delay_days", f"{rng.uniform(20, 120):.0f}", "", ""))
            out.append((sid, period, "cotisation_vs_cmn_ratio", f"{rng.uniform(0.7, 1.3):.3f}", "", ""))
            if len(out) >= n_rows:
                return out[:n_rows]
        month += 1
        if month == 13:
            year, month = year + 1, 1


@pytest.mark.slow
@pytest.mark.timeout(300)     # a guard against a hang; the speed is measured by make bench
def test_200k_row_file_is_accepted_whole(engine, tmp_path):
    svcs = register_rows(180, regions=("84", "93", "11", "52"))
    load_register(engine, write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS))
    rows = realistic_rows(svcs, 200_000)
    path = tmp_path / "national.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(INDICATOR_COLUMNS)
        w.writerows(rows)
    t0 = time.perf_counter()
    rep = ingest_file(engine, path)
    elapsed = time.perf_counter() - t0
    print(f"\n{engine.dialect.name}: ingest of 200,000 rows in {elapsed:.2f} s "
          f"({200_000 / elapsed:,.0f} rows/s)")
    assert (rep.rows, rep.accepted, rep.rejected, rep.unchanged) == (200_000, 200_000, 0, 0), rep.summary_fr()
    with engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(Observation)
                        .where(Observation.is_current.is_(True))) == 200_000
        first = c.execute(sa.select(Observation.value, Observation.numerator, Observation.denominator)
                          .where(Observation.row_number == 2)).one()
    assert first == (pytest.approx(float(rows[0][3].replace(",", "."))), rows[0][4], rows[0][5])
