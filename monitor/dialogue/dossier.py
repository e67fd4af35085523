"""What the agrément dialogue dossier of one service says: gathered from the store, the
alerts, the follow-ups, the objectives and the peer detector's scores (no rendering here:
:mod:`monitor.dialogue.dossier_pdf` lays it out).

The period is the agrément's (from its start, or five years before its end), cut to the
years with data; when fewer than three years of data fall in it (an agrément just renewed),
the five years of data before the dossier. For each indicator, the service's yearly value is set against its
regional and national peers (median and 10–90 % band of the yearly values of every service)
and its funnel position each year is the peer detector's worse-side z at the last month of
the year it reported: inside the funnel, beyond the 95 % or the 99.8 % limit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa

from monitor.accounts.access import Actor
from monitor.dialogue.attainment import yearly_values
from monitor.dialogue.objectives import service_objectives
from monitor.dialogue.scope import service_region, who
from monitor.readmodels.common import (
    indicator_label,
    load_analysis_panel,
    peer_indicators,
    peer_scores_of,
    size_dependent,
)
from monitor.readmodels.services import ServiceProfile, load_profile
from monitor.store import db
from monitor.store.models import Alert, FollowUp, Quarantine, Service
from monitor.vocabulary import dates as timefmt
from monitor.vocabulary.catalogue import CATALOGUE
from monitor.vocabulary.errors import AccessDenied
from monitor.vocabulary.formatting import fmt_value
from monitor.vocabulary.labels import CATEGORY_FR, dismiss_reason_fr, severity_fr
from monitor.vocabulary.periods import period_label_fr
from monitor.vocabulary.statuses import ACTIVE, AlertStatus, follow_up_label

DOSSIER_INDICATORS = tuple(c for c in CATALOGUE if c != "workers_followed")
Z95, Z998 = 1.959964, 3.090232
RENEWAL_MONTHS = 18   # the renewal file is prepared in the last year and a half


@dataclass
class IndicatorYears:
    code: str
    label: str
    worse: str
    frame: pd.DataFrame     # year, value, region_median, region_p10, region_p90, nat_median, nat_p10, nat_p90,
                            # zw, position (French)


@dataclass
class Dossier:
    profile: ServiceProfile           # the service's identity, as the service page shows it
    first_year: int | None
    last_year: int | None
    produced_on: date
    produced_by: str
    timeline: list[tuple[date, str]] = field(default_factory=list)
    indicators: list[IndicatorYears] = field(default_factory=list)
    objectives: pd.DataFrame = field(default_factory=pd.DataFrame)
    alerts: pd.DataFrame = field(default_factory=pd.DataFrame)
    follow_ups: pd.DataFrame = field(default_factory=pd.DataFrame)
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)   # year, missing_reports, dq_alerts, rejected_rows
    rejected_reasons: pd.DataFrame = field(default_factory=pd.DataFrame)
    talking_points: list[str] = field(default_factory=list)


def position_fr(zw: float | None) -> str:
    if zw is None or not np.isfinite(zw):
        return "—"
    if zw > Z998:
        return "hors limite 99,8 % (défavorable)"
    if zw > Z95:
        return "hors limite 95 % (défavorable)"
    if zw < -Z998:
        return "hors limite 99,8 % (favorable)"
    if zw < -Z95:
        return "hors limite 95 % (favorable)"
    return "dans l'entonnoir"


def _may_produce(user: Actor | None, region: str) -> None:
    if user is None:
        return
    if user.role not in ("agent", "manager", "national", "admin"):
        raise AccessDenied("Accès refusé : votre rôle ne permet pas de produire un dossier.")
    # region: service_region has already refused a service outside the user's regions


def _band(yearly: pd.DataFrame, prefix: str) -> pd.DataFrame:
    g = yearly.groupby("year")["value"]
    return pd.DataFrame({f"{prefix}_median": g.median(), f"{prefix}_p10": g.quantile(0.10),
                         f"{prefix}_p90": g.quantile(0.90)}).reset_index()


def _funnel_positions(panel, service_id: str, code: str) -> pd.DataFrame:
    if code not in peer_indicators():
        return pd.DataFrame(columns=["year", "zw"])
    cs = peer_scores_of(panel, code)
    if cs.empty:
        return pd.DataFrame(columns=["year", "zw"])
    mine = cs[cs["service_id"] == service_id].sort_values("month_index")
    mine = mine.assign(year=mine["month_index"] // 12)
    return mine.groupby("year").tail(1)[["year", "zw"]]


def _indicators(panel, service_id: str, region_ids: set[str], years: tuple[int, int]) -> list[IndicatorYears]:
    obs = panel.observations
    obs = obs[(obs["month_index"] // 12 >= years[0]) & (obs["month_index"] // 12 <= years[1])]
    yearly = yearly_values(obs[obs["indicator"].isin(DOSSIER_INDICATORS)])
    out = []
    for code in DOSSIER_INDICATORS:
        y = yearly[yearly["indicator"] == code]
        mine = y[y["service_id"] == service_id][["year", "value"]]
        if mine.empty:
            continue
        # a level that grows with the service's size (FTE) has no meaningful peer band
        peers = y.iloc[0:0] if code in size_dependent() else y
        frame = (mine.merge(_band(peers[peers["service_id"].isin(region_ids)], "region"), on="year", how="left")
                 .merge(_band(peers, "nat"), on="year", how="left")
                 .merge(_funnel_positions(panel, service_id, code), on="year", how="left"))
        if "zw" not in frame:
            frame["zw"] = np.nan
        frame["position"] = [position_fr(None if z != z else float(z)) for z in frame["zw"]]
        out.append(IndicatorYears(code, indicator_label(code), CATALOGUE[code].worse, frame.reset_index(drop=True)))
    return out


def _alerts(conn, service_id: str, first_month: int) -> pd.DataFrame:
    rows = conn.execute(sa.select(Alert.id, Alert.indicator, Alert.category, Alert.severity, Alert.status,
                                  Alert.opened_period, Alert.last_period, Alert.explanation, Alert.dismiss_reason)
                        .where(Alert.service_id == service_id, Alert.last_month_index >= first_month)
                        .order_by(Alert.opened_month_index, Alert.id)).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=["alert_id", "indicator", "category", "severity", "status",
                                                        "opened_period", "last_period", "explanation",
                                                        "dismiss_reason"])
    df["indicator_label"] = df["indicator"].map(indicator_label)
    df["category_fr"] = df["category"].map(lambda c: CATEGORY_FR.get(c, c))
    df["severity_fr"] = df["severity"].map(severity_fr)
    df["status_fr"] = df["status"].map(lambda s: AlertStatus(s).label if s in list(AlertStatus) else s)
    df["outcome_fr"] = [f"{st} ({dismiss_reason_fr(d)})" if d else st for st, d in zip(df["status_fr"],
                                                                                      df["dismiss_reason"])]
    df["opened_fr"] = df["opened_period"].map(period_label_fr)
    return df


def _follow_ups(conn, service_id: str) -> pd.DataFrame:
    from alerts.followups import KINDS

    rows = conn.execute(sa.select(FollowUp.id, FollowUp.kind, FollowUp.status, FollowUp.due_date,
                                  FollowUp.created_at, FollowUp.closed_at, FollowUp.legal_reference)
                        .where(FollowUp.service_id == service_id).order_by(FollowUp.created_at)).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=["follow_up_id", "kind", "status", "due_date", "created_at",
                                                        "closed_at", "legal_reference"])
    df["kind_fr"] = df["kind"].map(lambda k: KINDS[k].label if k in KINDS else k)
    df["status_fr"] = df["status"].map(follow_up_label)
    return df


def _quality(conn, service_id: str, years: tuple[int, int], alerts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    q = Quarantine.__table__
    rej = conn.execute(sa.select(q.c.month_index, q.c.reason, sa.func.count())
                       .where(q.c.service_id == service_id)
                       .group_by(q.c.month_index, q.c.reason)).all()
    rej = pd.DataFrame([tuple(r) for r in rej], columns=["month_index", "reason", "rows"])
    rej["year"] = (pd.to_numeric(rej["month_index"], errors="coerce") // 12)
    dq = alerts[alerts["category"] == "data_quality"].copy()
    dq["year"] = dq["opened_period"].astype(str).str[:4].astype(int) if len(dq) else []
    years_range = list(range(years[0], years[1] + 1)) if years[0] is not None else []
    table = pd.DataFrame({"year": years_range})
    table["missing_reports"] = [int(((dq["year"] == y) & (dq["indicator"] == "*")).sum()) for y in years_range]
    table["dq_alerts"] = [int((dq["year"] == y).sum()) for y in years_range]
    table["rejected_rows"] = [int(rej.loc[rej["year"] == y, "rows"].sum()) for y in years_range]
    reasons = (rej.groupby("reason")["rows"].sum().sort_values(ascending=False).reset_index()
               if len(rej) else pd.DataFrame(columns=["reason", "rows"]))
    return table, reasons


def _talking_points(d: Dossier) -> list[str]:
    points = []
    today = d.produced_on
    if d.profile.agrement_end:
        months = (d.profile.agrement_end.year - today.year) * 12 + d.profile.agrement_end.month - today.month
        if d.profile.agrement_end < today:
            points.append(f"Agrément échu le {timefmt.fr_date(d.profile.agrement_end)} : situation à régulariser.")
        elif months <= RENEWAL_MONTHS:
            points.append(f"Agrément jusqu'au {timefmt.fr_date(d.profile.agrement_end)} (dans {months} mois) : "
                          f"renouvellement à instruire (certification, CPOM, projet de service).")
        else:
            points.append(f"Agrément en cours jusqu'au {timefmt.fr_date(d.profile.agrement_end)} (dans {months} mois).")
    if not d.profile.certification_level:
        points.append("Aucune certification enregistrée : niveau minimal exigé pour l'agrément.")
    elif d.profile.certification_end:
        points.append(f"Certification de niveau {d.profile.certification_level} jusqu'au "
                      f"{timefmt.fr_date(d.profile.certification_end)}"
                      + (" (échue)." if d.profile.certification_end < today else "."))
    obj = d.objectives
    if len(obj):
        assessed = obj[obj["met"].notna()]
        missed = assessed[assessed["met"].eq(False)]
        points.append(f"Objectifs CPOM : {int(assessed['met'].eq(True).sum())} atteints sur {len(assessed)} "
                      f"évaluables.")
        for _, r in missed.sort_values("year").tail(4).iterrows():
            points.append(f"Objectif non atteint en {r['year']} : {r['indicator_label']}, "
                          f"{r['value_text']} pour une cible de {r['target_text']}.")
    for ind in d.indicators:
        last = ind.frame.iloc[-1]
        if isinstance(last["position"], str) and "défavorable" in last["position"]:
            points.append(f"{ind.label} en {int(last['year'])} : {fmt_value(ind.code, float(last['value']))}, "
                          f"{last['position']} face aux pairs nationaux.")
    if len(d.alerts):
        active = d.alerts[d.alerts["status"].isin([str(s) for s in ACTIVE])]
        high = int((active["severity"] == "high").sum())
        rules = int((active["category"] == "rule").sum())
        points.append(f"{len(d.alerts)} alerte(s) sur la période, dont {len(active)} en cours "
                      f"({high} de gravité élevée, {rules} manquement(s) à une règle).")
    if len(d.quality):
        miss, rej = int(d.quality["missing_reports"].sum()), int(d.quality["rejected_rows"].sum())
        if miss or rej:
            points.append(f"Qualité des données : {miss} rapport(s) manquant(s) ou en retard, "
                          f"{rej} ligne(s) rejetée(s) sur la période.")
    return points


def build_dossier(engine: sa.Engine, actor, service_id: str, panel=None, today: date | None = None) -> Dossier:
    """Everything the dossier shows; refused (AccessDenied) outside the user's regions."""
    user = who(engine, actor)
    region = service_region(engine, user, service_id)
    _may_produce(user, region)
    today = today or timefmt.today()
    with db.session_scope(engine) as session:
        s = load_profile(session, service_id)
    with engine.connect() as conn:
        region_ids = set(conn.execute(sa.select(Service.service_id).where(Service.region_code == region)).scalars())
    panel = panel if panel is not None else load_analysis_panel(engine)
    obs = panel.observations
    data_years = obs.loc[obs["service_id"] == service_id, "month_index"] // 12
    start = s.agrement_start.year if s.agrement_start else (s.agrement_end.year - 5 if s.agrement_end else None)
    first = int(data_years.min()) if len(data_years) else None
    last = int(data_years.max()) if len(data_years) else None
    if first is not None:
        # an agrément only just begun says little: then the five years of data before the dossier
        if start is None or last - start + 1 < 3:
            start = last - 4
        first = max(first, start)
    d = Dossier(profile=s, first_year=first, last_year=last,
                produced_on=today, produced_by=user.label() if user else "ligne de commande")
    if s.agrement_start:
        d.timeline.append((s.agrement_start, "Début de l'agrément"))
    if s.agrement_end:
        d.timeline.append((s.agrement_end, "Fin de l'agrément (renouvellement : D4622-48)"))
    if s.certification_end:
        d.timeline.append((s.certification_end, f"Fin de la certification de niveau {s.certification_level}"))
    if first is not None:
        d.indicators = _indicators(panel, service_id, region_ids, (first, last))
    d.objectives = service_objectives(engine, None, service_id)
    with engine.connect() as conn:
        d.alerts = _alerts(conn, service_id, (first or 0) * 12)
        d.follow_ups = _follow_ups(conn, service_id)
        d.quality, d.rejected_reasons = _quality(conn, service_id, (first, last), d.alerts)
    for _, f in d.follow_ups.iterrows():
        d.timeline.append((pd.Timestamp(f["created_at"]).date(), f"Suite : {f['kind_fr']} ({f['status_fr']})"))
    d.timeline.sort(key=lambda t: t[0])
    d.talking_points = _talking_points(d)
    return d



