"""Ingest indicator files: parse, normalise, validate, version, quarantine.

Everything for one file happens in one transaction: a failure leaves the database as it
was. Accepted rows become new versions of observations (a correction never overwrites);
rejected rows go to quarantine with a French reason; rows identical to the current
version are counted as unchanged.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from monitor.store import db
from monitor.store.bulk import bulk_insert, references_checked_by_caller
from monitor.store.models import IndicatorDef, Observation, Quarantine, Service, Submission, utcnow
from monitor.vocabulary.periods import is_future, parse_periods
from monitor.ingest.readers import InputFileError, RawTable, _on_unique, formula_mask, parse_numbers, read_table
from monitor.vocabulary.catalogue import CATALOGUE
from monitor.ingest.register import normalise_siret
from monitor.vocabulary.siret import luhn_valid_series

REQUIRED = ["service_id", "period", "indicator", "value"]
OPTIONAL = ["numerator", "denominator"]

# reason code -> French text (shown to data stewards, exported with the quarantine)
REASONS = {
    "bad_shape": "nombre de colonnes incorrect sur la ligne",
    "formula": "cellule contenant une formule de tableur (refusée par sécurité)",
    "invalid_siret": "SIRET invalide (14 chiffres, clé de Luhn)",
    "unknown_service": "service absent du registre (chargez-le avec « services load »)",
    "unknown_indicator": "code d'indicateur inconnu du catalogue",
    "bad_period": "période illisible (attendu AAAA-MM, AAAA-Tn/AAAA-Qn ou AAAA)",
    "bad_number": "valeur numérique illisible ou manquante",
    "negative": "valeur ou effectif négatif",
    "probable_percent": "proportion supérieure à 1 : probablement saisie en pourcentage (84 au lieu de 0,84)",
    "out_of_range": "valeur hors de la plage possible pour cet indicateur",
    "num_gt_den": "numérateur supérieur au dénominateur",
    "inconsistent": "valeur incohérente avec numérateur / dénominateur",
    "future_period": "période future : postérieure au mois en cours, ce n'est pas encore une donnée",
    "conflicting_duplicate": "doublon contradictoire : la même case figure plusieurs fois dans le fichier avec des valeurs différentes",
}


@dataclass
class IngestReport:
    file: str
    submission_id: int | None = None
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    unchanged: int = 0
    duplicate_file: bool = False
    reasons: dict[str, int] = field(default_factory=dict)

    def summary_fr(self) -> str:
        if self.duplicate_file:
            return (f"{self.file} : fichier déjà reçu (même empreinte), rien de modifié — "
                    f"acceptées 0, rejetées 0, inchangées {self.unchanged}")
        text = (f"{self.file} : acceptées {self.accepted}, rejetées {self.rejected}, "
                f"inchangées {self.unchanged}")
        if self.rows == 0:
            text += " (aucune ligne de données sous l'en-tête)"
        if self.reasons:
            text += " (" + "; ".join(f"{REASONS[k]} : {v}" for k, v in
                                     sorted(self.reasons.items(), key=lambda kv: -kv[1])) + ")"
        return text


def _first_reason(checks: list[tuple[pd.Series, str]], index: pd.Index) -> pd.Series:
    reason = pd.Series(None, index=index, dtype=object)
    for mask, code in checks:
        m = mask.reindex(index).fillna(False).astype(bool)
        reason = reason.where(reason.notna() | ~m, code)
    return reason


def _prepared(table: RawTable) -> pd.DataFrame:
    """The file's cells (as text) for the exchange columns; optional columns default to ''."""
    df = table.frame
    missing = [c for c in OPTIONAL if c not in df.columns]
    if missing:
        df = df.assign(**{c: "" for c in missing})
    return df[REQUIRED + OPTIONAL]


def validate(table: RawTable, known_services: set[str]) -> pd.DataFrame:
    """Return the rows with parsed columns and a ``reason`` (None when valid). Vectorised."""
    df = _prepared(table)
    out = pd.DataFrame(index=df.index)
    out["row_number"] = table.row_numbers.to_numpy()
    sid = _on_unique(df["service_id"], normalise_siret)
    out["service_id"] = sid
    out["indicator"] = _on_unique(df["indicator"], lambda s: s.astype(str).str.strip().str.lower())
    per = parse_periods(df["period"])
    out = out.join(per)
    out["value"] = parse_numbers(df["value"])
    out["numerator"] = parse_numbers(df["numerator"])
    out["denominator"] = parse_numbers(df["denominator"])
    num_given = df["numerator"].astype(str).str.strip().ne("")
    den_given = df["denominator"].astype(str).str.strip().ne("")

    meta = pd.DataFrame.from_dict(
        {c: {"kind": i.kind, "scale": i.scale, "lo": i.lower_bound, "hi": i.upper_bound}
         for c, i in CATALOGUE.items()}, orient="index")
    # the catalogue's entry of each row, looked up once per distinct code
    codes, uniques = pd.factorize(out["indicator"], use_na_sentinel=False)
    mu = meta.reindex(uniques)
    m = pd.DataFrame({"scale": mu["scale"].to_numpy(dtype=float)[codes], "lo": mu["lo"].to_numpy(dtype=float)[codes],
                      "hi": mu["hi"].to_numpy(dtype=float)[codes]}, index=out.index)
    kind = mu["kind"].tolist()
    is_prop = pd.Series(np.array([k == "proportion" for k in kind], dtype=bool)[codes], index=out.index)
    has_ratio = pd.Series(np.array([k in ("proportion", "rate", "ratio") for k in kind], dtype=bool)[codes],
                          index=out.index)
    v, n, d = out["value"], out["numerator"], out["denominator"]
    expected = m["scale"] * n / d.where(d > 0)
    tol = 0.02 * expected.abs() + np.where(m["scale"] > 1, 0.06, np.where(is_prop, 0.0006, 0.06))
    has_counts = n.notna() & d.notna() & (d > 0)

    checks = [
        (formula_mask(df, REQUIRED + OPTIONAL), "formula"),
        (~_on_unique(sid, luhn_valid_series).astype(bool), "invalid_siret"),
        (~sid.isin(known_services), "unknown_service"),
        (~out["indicator"].isin(list(CATALOGUE)), "unknown_indicator"),
        (out["period"].isna(), "bad_period"),
        (is_future(out["month_index"], out["period_kind"]), "future_period"),
        (v.isna() | (num_given & n.isna()) | (den_given & d.isna()), "bad_number"),
        ((v < 0) | (n < 0) | (d < 0), "negative"),
        (is_prop & (v > 1) & (v <= 100), "probable_percent"),
        ((v < m["lo"]) | (v > m["hi"]), "out_of_range"),
        (is_prop & has_counts & (n > d), "num_gt_den"),
        (has_counts & has_ratio & ((v - expected).abs() > tol),
         "inconsistent"),
    ]
    out["reason"] = _first_reason(checks, out.index)

    # Duplicated cells inside the file: identical repeats collapse, different values conflict.
    key = ["service_id", "indicator", "period"]
    out["identical_repeat"] = False
    valid = out["reason"].isna()
    cells = out.loc[valid, key + ["value", "numerator", "denominator"]]
    if len(cells):
        dup = cells.duplicated(key, keep=False)
        if dup.any():
            d_rows = cells[dup]
            vals = d_rows[["value", "numerator", "denominator"]].fillna(-1.0)
            n_versions = vals.groupby([d_rows[k] for k in key]).transform("nunique").max(axis=1)
            conflicting = n_versions[n_versions > 1].index
            out.loc[conflicting, "reason"] = "conflicting_duplicate"
            repeats = d_rows.drop(conflicting, errors="ignore").duplicated(key, keep="first")
            out.loc[repeats[repeats].index, "identical_repeat"] = True
    return out


# rows written (or read back) per statement: bounds the Python objects alive at once
_WRITE_ROWS = 100_000
_CUR_COLUMNS = ["service_id", "indicator", "period", "id", "version", "cur_value", "cur_num", "cur_den"]


def _current_observations(conn: sa.Connection, rows: pd.DataFrame) -> pd.DataFrame:
    """Current versions of the cells touched by ``rows`` (bounded by their month range)."""
    empty = pd.DataFrame({c: pd.Series(dtype=object if i < 3 else float) for i, c in enumerate(_CUR_COLUMNS)})
    if rows.empty:
        return empty
    t = Observation.__table__
    q = (sa.select(t.c.service_id, t.c.indicator, t.c.period, t.c.id, t.c.version,
                   t.c.value, t.c.numerator, t.c.denominator)
         .where(t.c.is_current.is_(True))
         .where(t.c.month_index.between(int(rows["month_index"].min()), int(rows["month_index"].max())))
         .where(t.c.indicator.in_(sorted(rows["indicator"].unique()))))
    # fetched in slices: a re-sent national file touches millions of stored cells, which as one
    # list of Python rows would cost gigabytes
    parts = [pd.DataFrame({c: pd.Series(list(v), dtype=object if i < 3 else float)
                           for i, (c, v) in enumerate(zip(_CUR_COLUMNS, zip(*part)))})
             for part in conn.execute(q).partitions(_WRITE_ROWS)]
    if not parts:
        return empty
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _supersede(conn: sa.Connection, ids: list[int]) -> None:
    """The current versions ``ids`` lose ``is_current`` (their data are kept)."""
    if not ids:
        return
    t = Observation.__table__
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        # one statement with an array parameter instead of thousands of placeholders
        name = conn.dialect.identifier_preparer.format_table(t)
        conn.exec_driver_sql(f"UPDATE {name} SET is_current = false WHERE id = ANY(%(ids)s)", {"ids": ids})
        return
    for chunk in range(0, len(ids), 5000):
        conn.execute(sa.update(t).where(t.c.id.in_(ids[chunk:chunk + 5000])).values(is_current=False))


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    a, b = a.astype(float), b.astype(float)
    return (a.isna() & b.isna()) | ((a - b).abs() <= 1e-9 * np.maximum(1.0, b.abs()))


def _nullable(values) -> list:
    """A column as a list of Python values, NaN/NA -> None (what DB drivers expect)."""
    arr = np.asarray(values, dtype=object)
    return [None if (v is None or v is pd.NA or v != v) else v for v in arr.tolist()]


def _quarantine_rows(table: RawTable, bad: pd.DataFrame, submission_id: int) -> list[dict]:
    """Quarantine records: rows of the wrong shape, then the rows ``validate`` rejected."""
    now = utcnow()
    out = [{"submission_id": submission_id, "row_number": int(line), "raw": {"cells": cells},
            "reason_code": "bad_shape", "reason": REASONS["bad_shape"],
            "service_id": None, "indicator": None, "period": None, "month_index": None,
            "created_at": now}
           for line, cells in table.bad_rows]
    if not len(bad):
        return out
    cells = _prepared(table).loc[bad.index]
    raw = cells.astype(str).to_dict("records")
    # a cell holding a formula is kept only inside ``raw``, never in a searchable column
    sid = bad["service_id"].where(~formula_mask(cells, ["service_id"]), None)
    ind = bad["indicator"].where(~formula_mask(cells, ["indicator"]), None)
    for r, line, code, s, i, per, mi in zip(raw, bad["row_number"].tolist(), bad["reason"].tolist(),
                                            _nullable(sid), _nullable(ind), _nullable(bad["period"]),
                                            _nullable(bad["month_index"])):
        out.append({"submission_id": submission_id, "row_number": int(line), "raw": r,
                    "reason_code": code, "reason": REASONS[code],
                    "service_id": None if s is None else str(s)[:64],
                    "indicator": None if i is None else str(i)[:64],
                    "period": per,
                    "month_index": None if mi is None or code == "future_period" else int(mi),
                    "created_at": now})
    return out


def _insert_quarantine(conn: sa.Connection, records: list[dict]) -> None:
    if not records:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg" and len(records) > 1000:
        cols = list(records[0])
        bulk_insert(conn, Quarantine.__table__, cols,
                     [tuple(json.dumps(r[c], ensure_ascii=False) if c == "raw" else r[c] for c in cols)
                      for r in records])
        return
    conn.execute(sa.insert(Quarantine.__table__), records)


def _texts(values: pd.Series) -> list[str]:
    """A column of few distinct texts (services, codes, periods) as Python strings, each
    distinct one made once and shared, instead of one new string per row."""
    codes, uniques = pd.factorize(values.astype(str), use_na_sentinel=False)
    return np.asarray(uniques, dtype=object)[codes].tolist()


def _floats_or_none(values: pd.Series) -> list:
    """A float column as Python floats, NaN -> None (what DB drivers expect), without a
    Python test per row."""
    arr = values.to_numpy(dtype=float).astype(object)
    arr[np.isnan(values.to_numpy(dtype=float))] = None
    return arr.tolist()


def _insert_observations(conn: sa.Connection, new: pd.DataFrame, submission_id: int) -> None:
    """Write the accepted rows as current versions, a slice at a time (the Python tuples of a
    whole national file would not fit the memory budget)."""
    columns = ["service_id", "indicator", "period", "period_kind", "month_index", "value",
               "numerator", "denominator", "version", "row_number"]
    version = new["version"].fillna(0).astype(int) + 1
    for a in range(0, len(new), _WRITE_ROWS):
        part = new.iloc[a:a + _WRITE_ROWS]
        records = list(zip(
            _texts(part["service_id"]), _texts(part["indicator"]), _texts(part["period"]),
            _texts(part["period_kind"]),
            part["month_index"].astype(int).tolist(), part["value"].astype(float).tolist(),
            _floats_or_none(part["numerator"]), _floats_or_none(part["denominator"]),
            version.iloc[a:a + _WRITE_ROWS].tolist(), part["row_number"].astype(int).tolist(),
        ))
        bulk_insert(conn, Observation.__table__, columns, records,
                    constants={"is_current": True, "submission_id": submission_id})


def ingest_file(engine: sa.Engine, path: str | Path, source: str = "cli") -> IngestReport:
    """Ingest one file. Raises InputFileError when it cannot be read (nothing is stored then)."""
    path = Path(path)
    table = read_table(path, REQUIRED)
    report = IngestReport(file=path.name, rows=len(table.frame) + len(table.bad_rows))
    # the references of accepted rows are checked here, in bulk: the service against the
    # register read in this transaction, the indicator against the catalogue table below
    with references_checked_by_caller(engine) as bind, db.session_scope(bind) as s:
        already = s.scalar(sa.select(Submission.id).where(Submission.checksum == table.checksum,
                                                          Submission.status == "ingested").limit(1))
        if already is not None:
            report.duplicate_file = True
            report.unchanged = report.rows
            sub = Submission(source=source, file_name=str(path.name), checksum=table.checksum,
                             status="duplicate", rows_total=report.rows, unchanged=report.rows,
                             error=f"déjà reçu (soumission n° {already})")
            s.add(sub)
            s.flush()
            report.submission_id = sub.id
            return report
        known = set(s.scalars(sa.select(Service.service_id)))
        rows = validate(table, known)
        sub = Submission(source=source, file_name=str(path.name), checksum=table.checksum,
                         status="ingested", rows_total=report.rows, received_at=utcnow())
        s.add(sub)
        s.flush()
        report.submission_id = sub.id
        conn = s.connection()

        quarantine = _quarantine_rows(table, rows[rows["reason"].notna()], sub.id)
        _insert_quarantine(conn, quarantine)
        report.rejected = len(quarantine)
        reasons = pd.Series([r["reason_code"] for r in quarantine], dtype=object).value_counts()
        report.reasons = {k: int(v) for k, v in reasons.items()}

        good = rows[rows["reason"].isna() & ~rows["identical_repeat"]]
        report.unchanged = int(rows["identical_repeat"].sum())
        del rows
        cur = _current_observations(conn, good)
        if cur.empty:                     # a new month: nothing to compare with
            new = good.assign(**{c: np.nan for c in _CUR_COLUMNS[3:]})
        else:
            merged = good.merge(cur, on=["service_id", "indicator", "period"], how="left")
            same = (merged["id"].notna() & _same(merged["value"], merged["cur_value"])
                    & _same(merged["numerator"], merged["cur_num"])
                    & _same(merged["denominator"], merged["cur_den"]))
            report.unchanged += int(same.sum())
            new = merged[~same]
            del merged
        del cur, good
        if len(new):
            missing = set(new["indicator"].unique()) - set(s.scalars(sa.select(IndicatorDef.code)))
            if missing:
                raise db.DatabaseError(
                    f"indicateur(s) {', '.join(sorted(missing))} absent(s) de la table du catalogue : "
                    f"lancez « spsti-monitor init » pour la mettre à jour")
            _supersede(conn, new["id"].dropna().astype(int).tolist())
            _insert_observations(conn, new, int(sub.id))
        report.accepted = len(new)
        sub.accepted, sub.rejected, sub.unchanged = report.accepted, report.rejected, report.unchanged
    return report


def ingest_files(engine: sa.Engine, paths: list[str | Path], source: str = "cli"):
    """Yield (path, report | InputFileError) for each file; one failure doesn't stop the others."""
    for p in paths:
        try:
            yield p, ingest_file(engine, p, source=source)
        except InputFileError as exc:
            _record_failure(engine, p, str(exc), source)
            yield p, exc


def _record_failure(engine: sa.Engine, path, message: str, source: str) -> None:
    from monitor.ingest.readers import checksum_bytes, checksum_file

    try:
        checksum = checksum_file(path) if Path(path).is_file() else checksum_bytes(b"")
    except OSError:
        checksum = checksum_bytes(b"")
    with db.session_scope(engine) as s:
        s.add(Submission(source=source, file_name=Path(path).name[:255], checksum=checksum,
                         status="failed", error=message))
