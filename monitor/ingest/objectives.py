"""Load CPOM objectives (``objectives load``): one target per service, indicator and year.

Read like the exchange format (:func:`monitor.ingest.readers.read_table`: CSV or XLSX,
encodings, separators, decimal comma). Each row is checked in order by a declarative list of
vectorised checks, like :func:`monitor.ingest.indicators.validate`; a rejected row is kept in
quarantine with its line and a French reason. Everything for one file happens in one
transaction; an objective already stored for the same key gets the file's new target.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from monitor.ingest.indicators import REASONS as INDICATOR_REASONS, _first_reason, _insert_quarantine, _nullable
from monitor.ingest.readers import InputFileError, RawTable, formula_mask, parse_numbers, read_table
from monitor.ingest.register import normalise_siret
from monitor.store import db
from monitor.store.models import Objective, Service, Submission, utcnow
from monitor.vocabulary.catalogue import CATALOGUE
from monitor.vocabulary.siret import luhn_valid_series

REQUIRED = ["service_id", "indicator", "year", "target"]
OPTIONAL = ["label"]
SOURCE = "objectifs CPOM"
MAX_LABEL = 300
YEARS = (2000, 2100)

REASONS = {
    # the row checks objectives share with indicator files, worded once (monitor.ingest.indicators)
    **{k: INDICATOR_REASONS[k] for k in ("bad_shape", "formula", "invalid_siret", "unknown_service",
                                          "unknown_indicator")},
    "bad_year": f"année illisible (attendu AAAA, entre {YEARS[0]} et {YEARS[1]})",
    "bad_number": "cible numérique illisible ou manquante",
    "unit_percent": "erreur d'unité : cible de proportion supérieure à 1, probablement en pourcentage "
                    "(85 au lieu de 0,85)",
    "unit_range": "erreur d'unité : cible hors de la plage possible de l'indicateur",
    "no_target": "indicateur sans cible possible (à tenir dans une fourchette, pas un objectif chiffré)",
    "label_too_long": f"libellé trop long (plus de {MAX_LABEL} caractères)",
    "duplicate": "doublon : le même service, indicateur et année figurent plusieurs fois dans le fichier",
}


@dataclass
class ObjectivesReport:
    file: str
    submission_id: int | None = None
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)   # (line, French reason)

    def summary_fr(self) -> str:
        text = (f"{self.file} : objectifs ajoutés {self.inserted}, mis à jour {self.updated}, "
                f"inchangés {self.unchanged}, rejetés {len(self.rejected)}")
        if self.rows == 0:
            text += " (aucune ligne de données sous l'en-tête)"
        return text


def validate(table: RawTable, known_services: set[str]) -> pd.DataFrame:
    """The rows with parsed columns and a ``reason`` code (None when valid). Vectorised."""
    df = table.frame
    if "label" not in df.columns:
        df = df.assign(label="")
    out = pd.DataFrame(index=df.index)
    out["row_number"] = table.row_numbers.to_numpy()
    sid = normalise_siret(df["service_id"])
    out["service_id"] = sid
    out["indicator"] = df["indicator"].astype(str).str.strip().str.lower()
    year_text = df["year"].astype(str).str.strip()
    year = pd.to_numeric(year_text.where(year_text.str.fullmatch(r"\d{4}")), errors="coerce")
    out["year"] = year
    out["target"] = parse_numbers(df["target"])
    out["label"] = df["label"].astype(str).str.strip()

    meta = pd.DataFrame.from_dict(
        {c: {"kind": i.kind, "worse": i.worse, "lo": i.lower_bound, "hi": i.upper_bound}
         for c, i in CATALOGUE.items()}, orient="index")
    m = meta.reindex(out["indicator"]).set_index(out.index)
    kind, worse = m["kind"], m["worse"]
    lo, hi = m["lo"].astype(float), m["hi"].astype(float)
    t = out["target"]
    checks = [
        (formula_mask(df, REQUIRED + OPTIONAL), "formula"),
        (~luhn_valid_series(sid).astype(bool), "invalid_siret"),
        (~sid.isin(known_services), "unknown_service"),
        (~out["indicator"].isin(list(CATALOGUE)), "unknown_indicator"),
        (worse.eq("outside"), "no_target"),
        (year.isna() | (year < YEARS[0]) | (year > YEARS[1]), "bad_year"),
        (t.isna(), "bad_number"),
        (kind.eq("proportion") & (t > 1) & (t <= 100), "unit_percent"),
        ((t < lo) | (t > hi), "unit_range"),
        (out["label"].str.len() > MAX_LABEL, "label_too_long"),
    ]
    out["reason"] = _first_reason(checks, out.index)
    # a key given twice in one file: neither row is trusted (which target did the CPOM sign?)
    valid = out["reason"].isna()
    key = ["service_id", "indicator", "year"]
    dup = out[valid].duplicated(key, keep=False)
    out.loc[dup[dup].index, "reason"] = "duplicate"
    return out


def _quarantine(table: RawTable, bad: pd.DataFrame, submission_id: int) -> list[dict]:
    now = utcnow()
    out = [{"submission_id": submission_id, "row_number": int(line), "raw": {"cells": cells},
            "reason_code": "bad_shape", "reason": REASONS["bad_shape"], "service_id": None,
            "indicator": None, "period": None, "month_index": None, "created_at": now}
           for line, cells in table.bad_rows]
    cells = table.frame.loc[bad.index].astype(str)
    sid = bad["service_id"].where(~formula_mask(cells, ["service_id"]), None)
    ind = bad["indicator"].where(~formula_mask(cells, ["indicator"]), None)
    for raw, line, code, s, i, y in zip(cells.to_dict("records"), bad["row_number"].tolist(),
                                        bad["reason"].tolist(), _nullable(sid), _nullable(ind),
                                        _nullable(bad["year"])):
        out.append({"submission_id": submission_id, "row_number": int(line), "raw": raw,
                    "reason_code": f"objective_{code}", "reason": REASONS[code],
                    "service_id": None if s is None else str(s)[:64],
                    "indicator": None if i is None else str(i)[:64],
                    "period": None if y is None else str(int(y)), "month_index": None, "created_at": now})
    return out


def load_objectives(engine: sa.Engine, path: str | Path) -> ObjectivesReport:
    """Load one objectives file. Raises InputFileError when it cannot be read (nothing stored)."""
    path = Path(path)
    table = read_table(path, REQUIRED)
    report = ObjectivesReport(file=path.name, rows=len(table.frame) + len(table.bad_rows))
    with db.session_scope(engine) as s:
        known = set(s.scalars(sa.select(Service.service_id)))
        rows = validate(table, known)
        sub = Submission(source=SOURCE, file_name=path.name, checksum=table.checksum, status="ingested",
                         rows_total=report.rows, received_at=utcnow())
        s.add(sub)
        s.flush()
        report.submission_id = sub.id
        bad = _quarantine(table, rows[rows["reason"].notna()], sub.id)
        _insert_quarantine(s.connection(), bad)
        report.rejected = sorted((r["row_number"], r["reason"]) for r in bad)
        good = rows[rows["reason"].isna()]
        existing = {(o.service_id, o.indicator, o.year): o for o in s.scalars(
            sa.select(Objective).where(Objective.service_id.in_(sorted(set(good["service_id"])) or ["-"])))}
        now = utcnow()
        for r in good.itertuples(index=False):
            key = (r.service_id, r.indicator, int(r.year))
            label = r.label or None
            old = existing.get(key)
            if old is None:
                s.add(Objective(service_id=r.service_id, indicator=r.indicator, year=int(r.year),
                                target=float(r.target), label=label, submission_id=sub.id,
                                row_number=int(r.row_number), updated_at=now))
                report.inserted += 1
            elif old.target == float(r.target) and old.label == label:
                report.unchanged += 1
            else:
                old.target, old.label, old.submission_id = float(r.target), label, sub.id
                old.row_number, old.updated_at = int(r.row_number), now
                report.updated += 1
        sub.accepted, sub.rejected, sub.unchanged = (report.inserted + report.updated, len(report.rejected),
                                                     report.unchanged)
    return report


__all__ = ["InputFileError", "ObjectivesReport", "REASONS", "load_objectives", "validate"]
