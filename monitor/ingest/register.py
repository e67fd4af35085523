"""Load (upsert) the register of services."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from monitor.store import db
from monitor.store.models import Service, ServiceDepartment, ServiceEvent, utcnow
from monitor.vocabulary.periods import parse_periods
from monitor.ingest.readers import formula_mask, parse_numbers, read_table
from monitor.vocabulary.catalogue import REGIONS
from monitor.vocabulary.siret import luhn_valid_series

REQUIRED = ["service_id", "name", "region_code", "departments", "workers_followed",
            "companies", "agrement_end"]
OPTIONAL = ["agrement_start", "certification_level", "certification_end",
            "max_workers_per_physician_fte", "cotisation_per_worker", "merger_periods", "absorbed_by"]


@dataclass
class RegisterReport:
    file: str
    inserted: int = 0
    updated: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def normalise_siret(values: pd.Series) -> pd.Series:
    return values.astype(str).str.replace(r"[\s\u00a0.\-]", "", regex=True)


def _dates(values: pd.Series) -> pd.Series:
    s = values.astype(str).str.strip()
    parsed = pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")
    alt = pd.to_datetime(s, format="%d/%m/%Y", errors="coerce")
    return parsed.fillna(alt)


# register fields whose change is an audit event (a service moved to another region…)
AUDITED = ("name", "region_code", "departments", "workers_followed", "companies", "agrement_start",
           "agrement_end", "certification_level", "certification_end", "max_workers_per_physician_fte",
           "cotisation_per_worker", "merger_periods", "absorbed_by")


def _audited(svc: Service) -> dict[str, str | None]:
    def text(v):
        if v is None:
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return str(v)
    return {k: text(getattr(svc, k)) for k in AUDITED}


def load_register(engine: sa.Engine, path: str | Path) -> RegisterReport:
    table = read_table(path, REQUIRED)
    df = table.frame.copy()
    for col in OPTIONAL:
        if col not in df.columns:
            df[col] = ""
    report = RegisterReport(file=Path(path).name)
    for line, _cells in table.bad_rows:
        report.rejected.append((line, "nombre de colonnes incorrect"))
    lines = table.row_numbers.to_numpy()
    df["service_id"] = normalise_siret(df["service_id"])
    df["region_code"] = df["region_code"].astype(str).str.strip().str.zfill(2)
    df["name"] = df["name"].astype(str).str.strip()
    workers = parse_numbers(df["workers_followed"])
    companies = parse_numbers(df["companies"])
    agr_end = _dates(df["agrement_end"])
    agr_start = _dates(df["agrement_start"])
    cert_end = _dates(df["certification_end"])
    cert_level = parse_numbers(df["certification_level"])
    ceiling = parse_numbers(df["max_workers_per_physician_fte"])
    fee = parse_numbers(df["cotisation_per_worker"])
    deps = df["departments"].astype(str).str.replace(r"\s", "", regex=True).str.upper()
    mergers = df["merger_periods"].astype(str).str.strip()
    absorbed = normalise_siret(df["absorbed_by"]).where(df["absorbed_by"].astype(str).str.strip().ne(""), "")

    checks = [
        (formula_mask(df, ["service_id", "name", "region_code", "departments"]),
         "cellule contenant une formule de tableur"),
        (~luhn_valid_series(df["service_id"]), "SIRET invalide (14 chiffres, clé de Luhn)"),
        (df["name"].eq(""), "nom du service vide"),
        (~df["region_code"].isin(list(REGIONS)), "code région INSEE inconnu"),
        (~deps.str.fullmatch(r"(\d{2,3}|2A|2B)(;(\d{2,3}|2A|2B))*"), "liste de départements illisible (codes séparés par « ; »)"),
        (workers.isna() | (workers < 0), "effectif suivi (workers_followed) manquant ou négatif"),
        (companies.isna() | (companies < 0), "nombre d'adhérents (companies) manquant ou négatif"),
        (agr_end.isna(), "date de fin d'agrément illisible (AAAA-MM-JJ)"),
        (df["certification_level"].str.strip().ne("") & ~cert_level.isin([0, 1, 2, 3]),
         "niveau de certification hors 0–3"),
        (df["agrement_start"].str.strip().ne("") & agr_start.isna(), "date de début d'agrément illisible"),
        (df["certification_end"].str.strip().ne("") & cert_end.isna(), "date de fin de certification illisible"),
        (df["max_workers_per_physician_fte"].str.strip().ne("") & (ceiling.isna() | (ceiling <= 0)),
         "plafond de salariés par ETP médecin illisible"),
        (df["cotisation_per_worker"].str.strip().ne("") & (fee.isna() | (fee < 0)), "cotisation par salarié illisible"),
    ]
    merger_ok = mergers.eq("") | mergers.str.split(";").map(
        lambda parts: parse_periods(pd.Series(parts))["period"].notna().all())
    checks.append((~merger_ok, "périodes de fusion illisibles (AAAA-MM séparées par « ; »)"))
    checks.append((absorbed.ne("") & ~luhn_valid_series(absorbed), "SIRET du service absorbant (absorbed_by) invalide"))
    reason = pd.Series(None, index=df.index, dtype=object)
    for mask, text in checks:
        reason = reason.where(reason.notna() | ~mask.fillna(True).astype(bool), text)
    dup = df["service_id"].duplicated(keep=False) & reason.isna()
    reason = reason.where(~dup, "SIRET présent deux fois dans le fichier")
    for i in reason[reason.notna()].index:
        report.rejected.append((int(lines[i]), f"{df.at[i, 'service_id']} : {reason[i]}"))
    ok = reason.isna()

    def opt(series, i, cast=float):
        v = series[i]
        return None if pd.isna(v) else cast(v)

    actor = f"registre {Path(path).name}"
    now = utcnow()
    with db.session_scope(engine) as s:
        existing = {svc.service_id: _audited(svc) for svc in s.scalars(sa.select(Service))}
        for i in df.index[ok]:
            sid = df.at[i, "service_id"]
            svc = Service(
                service_id=sid, name=df.at[i, "name"], region_code=df.at[i, "region_code"],
                departments=deps[i], workers_followed=int(workers[i]), companies=int(companies[i]),
                agrement_start=opt(agr_start, i, lambda t: t.date()),
                agrement_end=agr_end[i].date(),
                certification_level=opt(cert_level, i, int),
                certification_end=opt(cert_end, i, lambda t: t.date()),
                max_workers_per_physician_fte=opt(ceiling, i),
                cotisation_per_worker=opt(fee, i),
                merger_periods=mergers[i] or None,
                absorbed_by=absorbed[i] or None,
                updated_at=utcnow(),
            )
            before, after = existing.get(sid), _audited(svc)
            s.merge(svc)
            if before is None:
                s.add(ServiceEvent(service_id=sid, at=now, actor=actor, kind="created",
                                   to_value=f"région {after['region_code']} ; {after['name']}"))
            else:
                s.add_all([ServiceEvent(service_id=sid, at=now, actor=actor, kind=k, from_value=before[k],
                                        to_value=after[k]) for k in AUDITED if before[k] != after[k]])
            s.execute(sa.delete(ServiceDepartment).where(ServiceDepartment.service_id == sid))
            s.flush()
            for dep in sorted(set(deps[i].split(";"))):
                s.add(ServiceDepartment(service_id=sid, department_code=dep))
            if sid in existing:
                report.updated += 1
            else:
                report.inserted += 1
    return report
