"""The fast paths of ingest give exactly what the row-by-row code gives: the same cells, line
numbers and rows of the wrong shape from the vectorised CSV reader, the same numbers and formula
flags from the vectorised checks, and the same stored rows when the writes go a slice at a time.

The row-by-row reader (``readers._parse_csv``) and the per-cell helpers (``_parse_numbers``,
``_formula_cells``) are kept: they are the reference here, and what the fast paths fall back
on for anything they do not handle themselves (quotes, UTF-16, limits to report)."""
from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from helpers import INDICATOR_COLUMNS, REGISTER_COLUMNS, indicator_rows, register_rows, write_csv  # noqa: E402

from monitor.config.env import input_limits  # noqa: E402
from monitor.ingest import indicators as ingest_mod  # noqa: E402
from monitor.ingest import readers  # noqa: E402
from monitor.ingest.indicators import ingest_file  # noqa: E402
from monitor.ingest.register import load_register  # noqa: E402
from monitor.store.models import Observation, Quarantine  # noqa: E402

LIMITS = input_limits()


def _reference(text: str, sep: str, limits=LIMITS):
    try:
        return readers._parse_csv(text, sep, "utf-8", Path("f.csv"), limits)
    except readers.InputFileError:
        return None


def _fast(text: str, sep: str, limits=LIMITS):
    return readers._parse_csv_fast(text.encode("utf-8"), sep, "utf-8", Path("f.csv"), limits)


def assert_same_table(ref, fast) -> None:
    assert ref is not None, "the fast reader accepted a file the row-by-row reader refuses"
    assert list(fast.frame.columns) == list(ref.frame.columns)
    assert fast.frame.astype(object).values.tolist() == ref.frame.astype(object).values.tolist()
    assert fast.row_numbers.tolist() == ref.row_numbers.tolist()
    assert fast.bad_rows == ref.bad_rows


TRICKY = [
    # CRLF, a blank line, a line of blanks and separators, a row too short, one too long with
    # content, one too long with only blank trailing cells, no final newline
    "service_id,period,value\r\n1,2025-01,3\r\n\r\n , ,\r\n4,2025-02\r\n5,2025-03,6,x\r\n7,2025-04,8,, \r\n9,2025-05,10",
    # lone CRs (old Mac), a CR right before a CRLF, LF only
    "a;b\r1;2\r\r\n3;4\n5;6\n",
    # lines holding only non-ASCII blanks (no-break space, em space) are blank; accents are not
    "a,b\n\u00a0,\u2003\né,\n\u00a0\n,\nx,y\n",
    # cells with spaces and blanks kept as they are
    "Service_ID , Value\n  12 , 0,5 \n\t3\t,\t4\n",
    # a header and nothing else; a header with an empty column name
    "a,b,c\n",
    "a,,c\n1,2,3\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_fast_reader_matches_the_row_by_row_reader_on_tricky_files(text):
    sep = ";" if text.split("\n")[0].count(";") > text.split("\n")[0].count(",") else ","
    fast = _fast(text, sep)
    assert fast is not None           # no quote: the fast path answers itself
    assert_same_table(_reference(text, sep), fast)


def test_fast_reader_matches_on_random_files():
    rng = random.Random(13)
    cells = ["a", "1", "0,5", " ", "", "é", "\u00a0", "\t", "x y", "\u2003", "=1", "-2"]
    for _ in range(1500):
        sep = rng.choice([",", ";"])
        width = rng.randint(1, 5)
        lines = [sep.join(rng.choice(["service_id", "period", "Value ", "", "x"]) for _ in range(width))]
        for _ in range(rng.randint(0, 12)):
            n = rng.choice([width] * 4 + [width + 1, width + 2, width - 1, 0, 1])
            lines.append(sep.join(rng.choice(cells) for _ in range(max(n, 0))))
        text = "".join(line + rng.choice(["\n", "\r\n", "\r"]) for line in lines)
        if rng.random() < 0.3:
            text = text.rstrip("\r\n")
        fast = _fast(text, sep)
        if fast is not None:
            assert_same_table(_reference(text, sep), fast)


def test_fast_reader_leaves_quotes_and_limits_to_the_row_by_row_reader():
    assert _fast('a,b\n"1,5",2\n', ",") is None
    small = dataclasses.replace(LIMITS, max_empty_rows=1, max_columns=3, max_cell_chars=5)
    assert _fast("a,b\n\n\n1,2\n", ",", small) is None                 # too many blank lines
    assert _fast("a,b\n1,2,3,4\n", ",", small) is None                 # too many columns
    assert _fast("a,b\n123456,2\n", ",", small) is None                # a line longer than a cell may be
    assert _fast("a,b\n\n1,2\n", ",", small) is not None


def test_layout_is_the_same_in_small_chunks(monkeypatch):
    """A large file is laid out chunk by chunk: lines cut across chunks keep their numbers."""
    rng = random.Random(5)
    lines = ["service_id;period;value"] + [
        rng.choice(["1;2025-01;3", "", " ; ;", "4;2025-02", "5;2025-03;6;x", "7;2025-04;8;;", "é;x;\u00a0"])
        for _ in range(400)]
    text = "".join(line + rng.choice(["\n", "\r\n"]) for line in lines)
    whole = _fast(text, ";")
    monkeypatch.setattr(readers, "_LAYOUT_CHUNK", 37)
    assert_same_table(_reference(text, ";"), _fast(text, ";"))
    assert_same_table(_reference(text, ";"), whole)


@pytest.mark.parametrize("encoding,bom", [("utf-8", False), ("utf-8", True), ("cp1252", False)])
def test_read_table_takes_the_fast_path_for_every_encoding(tmp_path, monkeypatch, encoding, bom):
    text = "service_id;period;indicator;value;commentaire\r\n1;2025-01;x;0,5;Déclaré – « suivi »\r\n2;2025-02;y;1\r\n"
    path = tmp_path / "f.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    fast = readers.read_table(path, ["service_id"])
    assert fast.encoding == ("utf-8-sig" if bom else encoding) and fast.separator == ";"
    monkeypatch.setattr(readers, "_parse_csv_fast", lambda *a: None)
    ref = readers.read_table(path, ["service_id"])
    assert fast.frame.astype(object).values.tolist() == ref.frame.astype(object).values.tolist()
    assert fast.frame.values.tolist()[0][4] == "Déclaré – « suivi »"
    assert fast.bad_rows == ref.bad_rows == [(3, ["2", "2025-02", "y", "1"])]
    assert fast.checksum == ref.checksum


def test_vectorised_numbers_and_formulas_match_the_per_cell_helpers():
    rng = random.Random(3)
    atoms = ["0", "1", "9", ".", ",", "-", "+", "e", "E", " ", "\u00a0", "\u202f", "a", "=", "@", "nan", "inf",
             "\u0661", "\t", "%", "\x1c"]
    values = ["".join(rng.choice(atoms) for _ in range(rng.randint(0, 6))) for _ in range(5000)]
    values += ["0.84", "12", "-3", "+2", "1e3", ".5", "5.", "1e999", "-1e999", "0,84", " =1", "\x1c=1", "+A1"]
    for dtype in (object, str):
        s = pd.Series(values, dtype=dtype, index=range(7, 7 + len(values)))
        got = readers.parse_numbers(s)
        ref = readers._on_unique(s, readers._parse_numbers).astype(float)
        assert got.index.equals(s.index)
        a, b = got.to_numpy(), ref.to_numpy()
        assert ((a == b) | (np.isnan(a) & np.isnan(b))).all()
        frame = pd.DataFrame({"a": s, "b": s.iloc[::-1].to_numpy()}, index=s.index)
        ref_mask = (readers._on_unique(frame["a"], readers._formula_cells).astype(bool)
                    | readers._on_unique(frame["b"], readers._formula_cells).astype(bool))
        assert readers.formula_mask(frame, ["a", "b", "absent"]).equals(ref_mask)


# --------------------------------------------------------------------------- through the database


def _stored(engine, submission_id):
    o, q = Observation.__table__, Quarantine.__table__
    with engine.connect() as c:
        obs = [tuple(r) for r in c.execute(
            sa.select(o.c.service_id, o.c.indicator, o.c.period, o.c.version, o.c.is_current, o.c.value,
                      o.c.numerator, o.c.denominator, o.c.row_number)
            .where(o.c.submission_id == submission_id).order_by(o.c.row_number))]
        quar = [tuple(r) for r in c.execute(
            sa.select(q.c.row_number, q.c.reason_code).where(q.c.submission_id == submission_id)
            .order_by(q.c.row_number))]
    return obs, quar


def test_writes_in_slices_and_a_late_bad_row_keep_their_line_numbers(engine, tmp_path, monkeypatch):
    """Rows written a few at a time, the file laid out in small chunks: the same observations,
    versions and quarantine (a bad row far down keeps its line number) as in one go."""
    svcs = register_rows(6)
    load_register(engine, write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS))
    rows = indicator_rows(svcs, ["2025-01", "2025-02", "2025-03"])
    first = ingest_file(engine, write_csv(tmp_path / "first.csv", rows[:20], INDICATOR_COLUMNS))
    assert first.accepted == 20
    monkeypatch.setattr(ingest_mod, "_WRITE_ROWS", 7)
    monkeypatch.setattr(readers, "_LAYOUT_CHUNK", 64)
    changed = [dict(r) for r in rows]
    changed[3]["value"] = 0.5 if changed[3]["indicator"] != "workers_followed" else 1   # a correction
    changed[3]["numerator"], changed[3]["denominator"] = "", ""
    changed[-2]["value"] = "douze"                                                   # far down, faulty
    path = write_csv(tmp_path / "second.csv", changed, INDICATOR_COLUMNS)
    with open(path, "a", encoding="utf-8", newline="") as fh:
        fh.write(f"{svcs[0]['service_id']},2025-03\r\n")                            # the wrong shape, last
    rep = ingest_file(engine, path)
    assert (rep.rows, rep.accepted, rep.rejected, rep.unchanged) == (len(rows) + 1, len(rows) - 20, 2, 19)
    obs, quar = _stored(engine, rep.submission_id)
    assert quar == [(len(rows), "bad_number"), (len(rows) + 2, "bad_shape")]
    assert [o[-1] for o in obs] == [5] + [i + 2 for i in range(20, len(rows)) if i != len(rows) - 2]
    corrected = obs[0]
    assert corrected[3:5] == (2, True) and corrected[6:8] == (None, None)
    with engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(Observation)
                        .where(Observation.is_current.is_(True))) == len(rows) - 1


def test_sqlite_foreign_keys_are_enforced_again_after_an_ingest(sqlite_engine, tmp_path, monkeypatch):
    """The bulk write skips SQLite's per-row look-up of parent rows (ingest checks them itself);
    every pooled connection enforces foreign keys again afterwards, after a failure too."""
    eng = sqlite_engine
    svcs = register_rows(3)
    load_register(eng, write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS))
    path = write_csv(tmp_path / "a.csv", indicator_rows(svcs, ["2025-01"]), INDICATOR_COLUMNS)

    def all_enforced() -> bool:
        conns = [eng.connect() for _ in range(3)]
        try:
            return all(c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1 for c in conns)
        finally:
            for c in conns:
                c.close()

    def boom(*a, **k):
        raise RuntimeError("disque plein")

    monkeypatch.setattr(ingest_mod, "bulk_insert", boom)
    with pytest.raises(RuntimeError):
        ingest_file(eng, path)
    assert all_enforced()
    monkeypatch.undo()
    assert ingest_file(eng, path).accepted == 9
    assert all_enforced()
    with eng.begin() as c, pytest.raises(sa.exc.IntegrityError):
        c.exec_driver_sql("INSERT INTO observations (service_id, indicator, period, period_kind, month_index, "
                          "value, version, is_current, submission_id) VALUES ('x', 'y', '2025-01', 'M', 1, 1, 1, 1, 1)")


def test_an_indicator_missing_from_the_catalogue_table_is_refused_not_stored(engine, tmp_path):
    """The reference that foreign keys would have caught: a catalogue code the database does not
    know yet (``init`` not run after an upgrade). One sentence, nothing stored."""
    svcs = register_rows(2)
    load_register(engine, write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS))
    with engine.begin() as c:
        c.exec_driver_sql("DELETE FROM indicators WHERE code = 'nurse_fte'")
    rows = [{"service_id": s["service_id"], "period": "2025-01", "indicator": "nurse_fte", "value": "3"} for s in svcs]
    from monitor.store.db import DatabaseError
    with pytest.raises(DatabaseError, match="spsti-monitor init"):
        ingest_file(engine, write_csv(tmp_path / "n.csv", rows, INDICATOR_COLUMNS))
    with engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(Observation)) == 0
