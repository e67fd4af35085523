"""The register of services: load, upsert, line-numbered rejections, leading zeros, departments;
and the SIRET (Luhn) checks it relies on."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from helpers import REGISTER_COLUMNS, register_rows, siret, write_csv  # noqa: E402

from monitor.store.models import Service, ServiceDepartment  # noqa: E402
from monitor.ingest.readers import InputFileError  # noqa: E402
from monitor.ingest.register import load_register  # noqa: E402
from monitor.vocabulary.siret import luhn_complete, luhn_valid, luhn_valid_series  # noqa: E402


def _services(engine) -> dict[str, dict]:
    with engine.connect() as c:
        rows = c.execute(sa.select(Service.__table__)).mappings().all()
    return {r["service_id"]: dict(r) for r in rows}


def _departments(engine) -> dict[str, list[str]]:
    with engine.connect() as c:
        rows = c.execute(sa.select(ServiceDepartment.service_id, ServiceDepartment.department_code)
                         .order_by(ServiceDepartment.service_id, ServiceDepartment.department_code)).all()
    out: dict[str, list[str]] = {}
    for sid, dep in rows:
        out.setdefault(sid, []).append(dep)
    return out


# --------------------------------------------------------------------------- SIRET / Luhn

KNOWN_VALID = ["73282932000074", "35600000000048", "44306184100047"]   # published SIRETs


@pytest.mark.parametrize("s", KNOWN_VALID)
def test_luhn_valid_known_sirets(s):
    assert luhn_valid(s)


@pytest.mark.parametrize("s", ["73282932000075", "7328293200007", "732829320000740", "7328293200007a",
                               "", "1234 5678 9012", "7328293200007²", "٧٣٢٨٢٩٣٢٠٠٠٠٧٤",
                               "７３２８２９３２０００７４"])
def test_luhn_invalid(s):
    assert not luhn_valid(s)


def test_luhn_complete_makes_valid_numbers_and_each_digit_change_breaks_them():
    for i in range(50):
        s = luhn_complete(f"{123456789 + i * 7919:09d}0001"[:13])
        assert len(s) == 14 and luhn_valid(s)
        for pos in range(14):
            altered = s[:pos] + str((int(s[pos]) + 1) % 10) + s[pos + 1:]
            assert not luhn_valid(altered)
    with pytest.raises(ValueError):
        luhn_complete("12")


def test_luhn_valid_series_agrees_with_scalar():
    values = KNOWN_VALID + [siret(i) for i in range(30)] + [
        "73282932000075", "123", "", None, "7328293200007²", "٧٣٢٨٢٩٣٢٠٠٠٠٧٤", "abcdefghijklmn"]
    s = pd.Series(values, index=range(10, 10 + len(values)), dtype=object)
    got = luhn_valid_series(s)
    assert list(got.index) == list(s.index)
    assert got.tolist() == [luhn_valid(v) if v is not None else False for v in values]
    assert luhn_valid_series(pd.Series([], dtype=object)).tolist() == []


# --------------------------------------------------------------------------- loading


def test_load_inserts_services_and_departments(engine, tmp_path):
    rows = register_rows(6, regions=("84", "93", "11"))
    rows[0]["departments"] = "69; 38 ;01"
    rows[1]["max_workers_per_physician_fte"] = "3 500"
    rows[2]["cotisation_per_worker"] = "112,5"
    rows[3]["certification_level"] = ""
    rows[3]["certification_end"] = ""
    path = write_csv(tmp_path / "reg.csv", rows, REGISTER_COLUMNS)
    report = load_register(engine, path)
    assert (report.inserted, report.updated, report.rejected) == (6, 0, [])
    svcs = _services(engine)
    assert set(svcs) == {r["service_id"] for r in rows}
    s0 = svcs[rows[0]["service_id"]]
    assert s0["name"] == "Service test 0" and s0["region_code"] == "84"
    assert s0["workers_followed"] == 20000 and s0["companies"] == 20000 // 12
    assert str(s0["agrement_end"]) == "2029-06-30" and s0["certification_level"] == 2
    assert svcs[rows[1]["service_id"]]["max_workers_per_physician_fte"] == 3500.0
    assert svcs[rows[2]["service_id"]]["cotisation_per_worker"] == 112.5
    assert svcs[rows[3]["service_id"]]["certification_level"] is None
    assert svcs[rows[3]["service_id"]]["certification_end"] is None
    deps = _departments(engine)
    assert deps[rows[0]["service_id"]] == ["01", "38", "69"]
    assert deps[rows[1]["service_id"]] == ["13", "83"]
    assert deps[rows[2]["service_id"]] == ["75", "92"]


def test_second_load_updates_without_duplicating(engine, tmp_path):
    rows = register_rows(4)
    load_register(engine, write_csv(tmp_path / "reg1.csv", rows, REGISTER_COLUMNS))
    before = _services(engine)
    rows[1]["name"] = "Service renommé"
    rows[1]["workers_followed"] = 99000
    rows[1]["departments"] = "42"
    extra = register_rows(5)[4]
    report = load_register(engine, write_csv(tmp_path / "reg2.csv", rows + [extra], REGISTER_COLUMNS))
    assert (report.inserted, report.updated, report.rejected) == (1, 4, [])
    after = _services(engine)
    assert len(after) == 5
    sid = rows[1]["service_id"]
    assert after[sid]["name"] == "Service renommé" and after[sid]["workers_followed"] == 99000
    assert _departments(engine)[sid] == ["42"]                      # replaced, not appended
    for r in (rows[0], rows[2], rows[3]):                            # untouched values identical
        a = {k: v for k, v in after[r["service_id"]].items() if k != "updated_at"}
        b = {k: v for k, v in before[r["service_id"]].items() if k != "updated_at"}
        assert a == b
    with engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(ServiceDepartment)) == 3 * 2 + 1 + 2
    # a third load whose only row is invalid changes nothing at all
    before, deps_before = _services(engine), _departments(engine)
    bad = dict(rows[0], region_code="99", name="Nom qui ne doit pas passer")
    report = load_register(engine, write_csv(tmp_path / "reg3.csv", [bad], REGISTER_COLUMNS))
    assert (report.inserted, report.updated, len(report.rejected)) == (0, 0, 1)
    assert _services(engine) == before and _departments(engine) == deps_before


def test_region_codes_with_leading_zeros_are_preserved(engine, tmp_path):
    rows = register_rows(6, regions=("01", "02", "03", "04", "06", "84"))
    for r, dep in zip(rows, ["971", "972", "973", "974", "976", "01"]):
        r["departments"] = dep
    rows[1]["region_code"] = "2"          # a spreadsheet dropped the zero
    rows[5]["departments"] = "01;69"
    path = write_csv(tmp_path / "reg.csv", rows, REGISTER_COLUMNS, sep=";")
    assert ';"01;69";' in path.read_text()           # `;` file: the department list is quoted
    report = load_register(engine, path)
    assert report.rejected == [] and report.inserted == 6
    svcs = _services(engine)
    assert [svcs[r["service_id"]]["region_code"] for r in rows] == ["01", "02", "03", "04", "06", "84"]
    assert _departments(engine)[rows[5]["service_id"]] == ["01", "69"]
    assert _departments(engine)[rows[0]["service_id"]] == ["971"]


def test_invalid_rows_are_reported_with_line_numbers_and_reasons(engine, tmp_path):
    rows = register_rows(12)
    rows[1]["service_id"] = rows[1]["service_id"][:-1] + str((int(rows[1]["service_id"][-1]) + 1) % 10)
    rows[2]["region_code"] = "99"
    rows[3]["departments"] = "69,38"
    rows[4]["workers_followed"] = "beaucoup"
    rows[5]["agrement_end"] = "fin 2029"
    rows[6]["certification_level"] = "5"
    rows[7]["name"] = "  "
    rows[8]["name"] = '=HYPERLINK("http://x","y")'
    rows[9]["companies"] = "-3"
    rows[11]["service_id"] = rows[10]["service_id"]                 # same SIRET twice
    path = write_csv(tmp_path / "reg.csv", rows, REGISTER_COLUMNS)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("trop,peu,de,colonnes\n")                          # line 14
    report = load_register(engine, path)
    assert report.inserted == 1                                     # only rows[0]
    got = dict(report.rejected)
    expected = {3: "SIRET invalide", 4: "code région", 5: "départements", 6: "effectif suivi",
                7: "fin d'agrément", 8: "certification", 9: "nom du service vide", 10: "formule",
                11: "adhérents", 12: "deux fois", 13: "deux fois", 14: "nombre de colonnes"}
    assert sorted(got) == sorted(expected)
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])
    assert set(_services(engine)) == {rows[0]["service_id"]}


def test_missing_required_columns_are_named_and_nothing_changes(engine, tmp_path):
    rows = register_rows(3)
    load_register(engine, write_csv(tmp_path / "reg1.csv", rows, REGISTER_COLUMNS))
    before = _services(engine)
    for drop in (["region_code"], ["departments", "agrement_end"]):
        cols = [c for c in REGISTER_COLUMNS if c not in drop]
        rows[0]["name"] = "Ne doit pas être chargé"
        with pytest.raises(InputFileError) as exc:
            load_register(engine, write_csv(tmp_path / "reg2.csv", rows, cols))
        msg = str(exc.value)
        assert "reg2.csv" in msg and "colonne(s) obligatoire(s) absente(s)" in msg
        for c in drop:
            assert c in msg
        assert _services(engine) == before


def test_register_with_bom_and_upper_case_headers_and_header_only(engine, tmp_path):
    rows = register_rows(2)
    path = tmp_path / "reg.csv"
    write_csv(path, rows, REGISTER_COLUMNS, encoding="utf-8-sig")
    text = path.read_text(encoding="utf-8-sig")
    header, rest = text.split("\n", 1)
    path.write_text(header.upper() + "\n" + rest, encoding="utf-8-sig")
    report = load_register(engine, path)
    assert report.inserted == 2 and report.rejected == []
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(REGISTER_COLUMNS) + "\n", encoding="utf-8")
    before = _services(engine)
    report = load_register(engine, empty)
    assert (report.inserted, report.updated, report.rejected) == (0, 0, [])
    assert _services(engine) == before
