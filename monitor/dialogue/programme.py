"""The yearly control programme of a region: a ranked, explained, capacity-bound list of
services, proposed from what the product knows, then changed and saved by a manager.

* :func:`programme_inputs` gathers the counts the score uses (queries only);
* :mod:`monitor.dialogue.scoring` turns them into scores and French reasons (pure);
* :func:`get_programme` returns the saved programme of a region and year, else a proposal;
* :func:`save_programme` records a manager's version: every change of selection against the
  proposal needs a reason; each save is a new append-only row (who, when, what), so the
  history is the audit trail. The national level reads and never saves.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime

import pandas as pd
import sqlalchemy as sa

from monitor.accounts.access import Actor, require_write
from monitor.dialogue.objectives import objectives_frame
from monitor.dialogue.scope import check_region, who
from monitor.dialogue.scoring import OUTPUT_COLUMNS, Weights, score_services
from monitor.store import db
from monitor.store.models import Alert, FollowUp, ProgrammeVersion, Region, Service, utcnow
from monitor.vocabulary.errors import AccessDenied, InvalidAction
from monitor.vocabulary.statuses import ACTIVE

CONTROL_KINDS = ("controle_sur_pieces", "controle_sur_place")
PERSISTENT_MONTHS = 6
DEFAULT_CAPACITY = 10
MAX_REASON = 500


def _csv_safe(value):
    from alerts.safe_csv import safe_cell

    return safe_cell(value)


@dataclass
class Programme:
    region_code: str
    region_name: str
    year: int
    capacity: int
    weights: Weights
    rows: pd.DataFrame                       # OUTPUT_COLUMNS + proposed, change_reason
    saved_by: str | None = None
    saved_at: datetime | None = None
    version_id: int | None = None
    comment: str | None = None
    history: list[dict] = field(default_factory=list)

    @property
    def saved(self) -> bool:
        return self.version_id is not None

    def status_fr(self) -> str:
        if not self.saved:
            return "proposition calculée (non enregistrée)"
        return f"programme enregistré par {self.saved_by} le {self.saved_at:%d/%m/%Y à %H:%M}"


def _years_between(earlier: date, later: date) -> float:
    return max(0.0, (later - earlier).days / 365.25)


def programme_inputs(engine: sa.Engine, region: str, year: int) -> pd.DataFrame:
    """One row per service of the region with the counts :func:`score_services` reads.
    ``year`` is the year whose controls are planned; the reference year (data-quality
    alerts, objectives) is the year before; dates are judged at the end of ``year``."""
    end_of_year = date(year, 12, 31)
    start_of_year = date(year, 1, 1)
    ref = year - 1
    with engine.connect() as conn:
        svc = pd.DataFrame([tuple(r) for r in conn.execute(
            sa.select(Service.service_id, Service.name, Service.agrement_end, Service.certification_level,
                      Service.certification_end).where(Service.region_code == region)).all()],
            columns=["service_id", "service_name", "agrement_end", "certification_level", "certification_end"])
        alerts = pd.DataFrame([tuple(r) for r in conn.execute(
            sa.select(Alert.service_id, Alert.status, Alert.severity, Alert.category, Alert.opened_month_index,
                      Alert.last_month_index)
            .join(Service, Service.service_id == Alert.service_id).where(Service.region_code == region)).all()],
            columns=["service_id", "status", "severity", "category", "opened", "last"])
        controls = pd.DataFrame([tuple(r) for r in conn.execute(
            sa.select(FollowUp.service_id, sa.func.max(sa.func.coalesce(FollowUp.closed_at, FollowUp.created_at)))
            .join(Service, Service.service_id == FollowUp.service_id)
            .where(Service.region_code == region, FollowUp.kind.in_(CONTROL_KINDS))
            .group_by(FollowUp.service_id)).all()], columns=["service_id", "last_control"])
    if svc.empty:
        return pd.DataFrame(columns=["service_id", "service_name"])
    out = svc[["service_id", "service_name"]].copy()
    active = alerts[alerts["status"].isin([str(s) for s in ACTIVE])]

    def count(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby("service_id").size().reindex(out["service_id"]).fillna(0).astype(int).to_numpy()

    for sev in ("high", "medium", "low"):
        out[f"alerts_{sev}"] = count(active[active["severity"] == sev])
    out["persistent"] = count(active[(active["last"] - active["opened"]) >= PERSISTENT_MONTHS - 1])
    out["rule_breaches"] = count(active[active["category"] == "rule"])
    dq = alerts[(alerts["category"] == "data_quality") & (alerts["opened"] // 12 == ref)]
    out["data_quality"] = count(dq)
    obj = objectives_frame(engine, None, region)
    missed = obj[(obj["year"] == ref) & obj["met"].eq(False)]
    out["objectives_missed"] = count(missed)
    out["agrement_ending"] = [d is None or d <= end_of_year for d in svc["agrement_end"]]
    out["certification_ending"] = [(lvl is None or lvl != lvl or int(lvl) == 0) or (d is not None and d <= end_of_year)
                                   for lvl, d in zip(svc["certification_level"], svc["certification_end"])]
    out["reference_year"] = ref
    last = dict(zip(controls["service_id"], controls["last_control"]))
    out["years_since_control"] = [
        None if last.get(s) is None else _years_between(pd.Timestamp(last[s]).date(), start_of_year)
        for s in out["service_id"]]
    return out


def propose(engine: sa.Engine, region: str, year: int, capacity: int = DEFAULT_CAPACITY,
            weights: Weights | None = None) -> pd.DataFrame:
    rows = score_services(programme_inputs(engine, region, year), weights or Weights(), capacity)
    rows["proposed"] = rows["selected"]
    rows["change_reason"] = None
    return rows


def _check_year(year: int) -> int:
    year = int(year)
    if not 2000 <= year <= 2100:
        raise InvalidAction(f"Année invalide : {year} (attendu AAAA).")
    return year


def _check_capacity(capacity) -> int:
    if capacity is None:
        return DEFAULT_CAPACITY
    capacity = int(capacity)
    if capacity < 0 or capacity > 10000:
        raise InvalidAction(f"Capacité invalide : {capacity} (nombre de contrôles, 0 ou plus).")
    return capacity


def _region_name(engine: sa.Engine, code: str) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.select(Region.name).where(Region.code == code)).scalar() or code


def _latest(engine: sa.Engine, region: str, year: int) -> ProgrammeVersion | None:
    with db.session_scope(engine) as s:
        v = s.scalar(sa.select(ProgrammeVersion).where(ProgrammeVersion.region_code == region,
                                                       ProgrammeVersion.year == year)
                     .order_by(ProgrammeVersion.id.desc()).limit(1))
        if v is not None:
            s.expunge(v)
        return v


def programme_history(engine: sa.Engine, actor, region: str, year: int) -> list[dict]:
    """Every save of the programme, newest first: who, when, capacity, selected, comment."""
    region = check_region(who(engine, actor), region, "ce programme")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ProgrammeVersion.id, ProgrammeVersion.saved_by, ProgrammeVersion.saved_at,
                                      ProgrammeVersion.capacity, ProgrammeVersion.rows, ProgrammeVersion.comment)
                            .where(ProgrammeVersion.region_code == region, ProgrammeVersion.year == int(year))
                            .order_by(ProgrammeVersion.id.desc())).all()
    out = []
    for vid, by, at, cap, data, comment in rows:
        data = json.loads(data) if isinstance(data, str) else data
        changes = [r for r in data if r.get("change_reason")]
        out.append({"version": vid, "saved_by": by, "saved_at": at, "capacity": cap,
                    "selected": sum(1 for r in data if r["selected"]), "changes": len(changes),
                    "comment": comment})
    return out


def get_programme(engine: sa.Engine, actor, region: str, year: int, capacity: int | None = None,
                  weights: Weights | None = None, proposal: bool = False) -> Programme:
    """The programme saved for the region and year if there is one (unless ``proposal``),
    else a fresh proposal selecting the first ``capacity`` services."""
    user = who(engine, actor)
    region = check_region(user, region, "ce programme")
    year = _check_year(year)
    saved = None if proposal else _latest(engine, region, year)
    name = _region_name(engine, region)
    if saved is not None:
        data = saved.rows if not isinstance(saved.rows, str) else json.loads(saved.rows)
        rows = pd.DataFrame(data)
        for c in ("proposed", "change_reason"):
            if c not in rows:
                rows[c] = None
        return Programme(region, name, year, saved.capacity, Weights.from_dict(saved.weights), rows,
                         saved.saved_by, saved.saved_at, saved.id, saved.comment)
    capacity = _check_capacity(capacity)
    weights = weights or Weights()
    return Programme(region, name, year, capacity, weights, propose(engine, region, year, capacity, weights))


def save_programme(engine: sa.Engine, actor, region: str, year: int, capacity: int | None = None,
                   changes: dict[str, tuple[bool, str]] | None = None, comment: str | None = None) -> Programme:
    """Save a region's programme: the proposal for ``capacity`` with the manager's
    ``changes`` ({service_id: (selected, reason)}); each change needs a reason. Only a manager
    (or an administrator) of the region may save; the national level reads only."""
    user = who(engine, actor)
    if user is None:
        raise AccessDenied("Accès refusé : enregistrer un programme demande un responsable identifié (--as).")
    region = check_region(user, region, "ce programme")
    require_write(user, region, "ce programme")
    if user.role not in ("manager", "admin"):
        raise AccessDenied("Accès refusé : seul un responsable de pôle peut arrêter le programme de contrôle.")
    year = _check_year(year)
    capacity = _check_capacity(capacity)
    rows = propose(engine, region, year, capacity)
    known = set(rows["service_id"])
    for sid, (selected, reason) in (changes or {}).items():
        if sid not in known:
            raise InvalidAction(f"Le service {sid} n'est pas dans le programme de cette région.")
        i = rows.index[rows["service_id"] == sid][0]
        if bool(rows.at[i, "proposed"]) == bool(selected):
            continue
        reason = (reason or "").strip()
        if not reason:
            raise InvalidAction(f"Motif obligatoire pour {'ajouter' if selected else 'retirer'} le service "
                                f"{rows.at[i, 'service_name']} du programme.")
        if len(reason) > MAX_REASON:
            raise InvalidAction(f"Motif trop long (plus de {MAX_REASON} caractères).")
        rows.at[i, "selected"] = bool(selected)
        rows.at[i, "change_reason"] = reason
    records = [{"rank": int(r.rank), "service_id": r.service_id, "service_name": r.service_name,
                "score": float(r.score), "selected": bool(r.selected), "reasons": r.reasons,
                "proposed": bool(r.proposed), "change_reason": r.change_reason}
               for r in rows.itertuples(index=False)]
    with db.session_scope(engine) as s:
        v = ProgrammeVersion(region_code=region, year=year, capacity=capacity, weights=Weights().as_dict(),
                             rows=records, saved_by=user.email, saved_at=utcnow(),
                             comment=(comment or "").strip()[:MAX_REASON] or None)
        s.add(v)
    return get_programme(engine, user, region, year)


# ---------------------------------------------------------------- exports

def export_rows(p: Programme) -> list[dict]:
    return [{"rank": int(r["rank"]), "service_id": str(r["service_id"]), "service_name": str(r["service_name"]),
             "score": float(r["score"]), "selected": bool(r["selected"]), "reasons": str(r["reasons"])}
            for _, r in p.rows.iterrows()]


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=OUTPUT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("true" if r[k] else "false") if k == "selected" else _csv_safe(r[k]) for k in OUTPUT_COLUMNS})
    return buf.getvalue()


def export_programme(p: Programme, fmt: str = "csv") -> str:
    """The programme's columns (rank, service_id, service_name, score, selected, reasons)."""
    rows = export_rows(p)
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    if fmt == "csv":
        return to_csv(rows)
    raise InvalidAction(f"Format inconnu : {fmt} (csv ou json).")


def partner_export(p: Programme) -> str:
    """The export for a partner (ARS, joint inspection programme): only what the programme
    shows, and only the services it selects; no internal notes, names of agents or reasons
    for a change of selection."""
    return to_csv([r for r in export_rows(p) if r["selected"]])


def actor_may_save(actor: Actor | None, region: str) -> bool:
    return actor is not None and actor.role in ("manager", "admin") and actor.covers(region)
