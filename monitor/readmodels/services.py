"""Services of the user's regions: listing, profile, and each indicator's series against its
peers (median and 10–90 % band) with the findings that flagged it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa

from monitor.accounts.access import require_read, resolve_actor
from monitor.readmodels.common import (
    SMALL_MULTIPLE_INDICATORS,
    acting_user,
    check_service,
    indicator_label,
    load_analysis_panel,
    peer_indicators,
    peer_scores_of,
    region_filter,
    size_dependent,
    stored_findings,
)
from monitor.store import db
from monitor.store.models import Alert, FollowUp, Region, Service, ServiceDepartment
from monitor.vocabulary.catalogue import CATALOGUE
from monitor.vocabulary.errors import NotFound
from monitor.vocabulary.labels import CATEGORY_FR
from monitor.vocabulary.periods import month_label_fr
from monitor.vocabulary.statuses import FOLLOW_UP_ACTIVE, QUEUE

if TYPE_CHECKING:
    from detectors.panel import Panel


SERVICE_COLUMNS = ["service_id", "name", "region_code", "region_name", "departments", "workers_followed",
                   "companies", "agrement_start", "agrement_end", "certification_level", "certification_end",
                   "open_alerts", "high_alerts", "active_follow_ups"]

def services_frame(engine: sa.Engine, actor, region: str | None = None,
                   department: str | None = None) -> pd.DataFrame:
    """Services of the user's regions (optionally one region, one department) with their
    open alerts and active follow-ups."""
    who = acting_user(engine, actor)
    s, r = Service.__table__, Region.__table__
    open_a = (sa.select(Alert.service_id, sa.func.count().label("n"),
                        sa.func.sum(sa.case((Alert.severity == "high", 1), else_=0)).label("high"))
              .where(Alert.status.in_(QUEUE)).group_by(Alert.service_id).subquery())
    fus = (sa.select(FollowUp.service_id, sa.func.count().label("n"))
           .where(FollowUp.status.in_(FOLLOW_UP_ACTIVE)).group_by(FollowUp.service_id).subquery())
    q = (sa.select(s.c.service_id, s.c.name, s.c.region_code, r.c.name, s.c.departments, s.c.workers_followed,
                   s.c.companies, s.c.agrement_start, s.c.agrement_end, s.c.certification_level,
                   s.c.certification_end, sa.func.coalesce(open_a.c.n, 0), sa.func.coalesce(open_a.c.high, 0),
                   sa.func.coalesce(fus.c.n, 0))
         .select_from(s.join(r, r.c.code == s.c.region_code)
                      .outerjoin(open_a, open_a.c.service_id == s.c.service_id)
                      .outerjoin(fus, fus.c.service_id == s.c.service_id))
         .where(region_filter(who, s.c.region_code, region)))
    if department:
        q = q.where(s.c.service_id.in_(sa.select(ServiceDepartment.service_id)
                                       .where(ServiceDepartment.department_code == department)))
    with engine.connect() as conn:
        out = pd.DataFrame([tuple(x) for x in conn.execute(q).all()], columns=SERVICE_COLUMNS)
    # services needing attention first
    return out.sort_values(["high_alerts", "open_alerts", "name"], ascending=[False, False, True],
                           kind="mergesort").reset_index(drop=True)

@dataclass
class ServiceProfile:
    service_id: str
    name: str
    region_code: str
    region_name: str
    departments: list[str]
    workers_followed: int
    companies: int
    agrement_start: date | None
    agrement_end: date | None
    certification_level: int | None
    certification_end: date | None
    max_workers_per_physician_fte: float | None
    cotisation_per_worker: float | None
    merger_periods: str | None
    absorbed_by: str | None

def service_profile(engine: sa.Engine, actor, service_id: str) -> ServiceProfile:
    """A service's identity; refused outside the user's regions."""
    with db.session_scope(engine) as session:
        who = resolve_actor(session, actor)
        profile = load_profile(session, service_id)
        require_read(who, profile.region_code, "ce service")
        return profile


def load_profile(session, service_id: str) -> ServiceProfile:
    """A service's identity, with no access check: the caller has checked the region."""
    row = session.execute(sa.select(Service, Region.name).join(Region, Region.code == Service.region_code)
                          .where(Service.service_id == str(service_id).strip())).one_or_none()
    if row is None:
        raise NotFound(f"Service {service_id} introuvable.")
    svc, region_name = row
    deps = list(session.scalars(sa.select(ServiceDepartment.department_code)
                                .where(ServiceDepartment.service_id == svc.service_id)
                                .order_by(ServiceDepartment.department_code)))
    return ServiceProfile(
        service_id=svc.service_id, name=svc.name, region_code=svc.region_code, region_name=region_name,
        departments=deps or [d for d in (svc.departments or "").split(";") if d],
        workers_followed=svc.workers_followed, companies=svc.companies, agrement_start=svc.agrement_start,
        agrement_end=svc.agrement_end, certification_level=svc.certification_level,
        certification_end=svc.certification_end,
        max_workers_per_physician_fte=svc.max_workers_per_physician_fte,
        cotisation_per_worker=svc.cotisation_per_worker, merger_periods=svc.merger_periods,
        absorbed_by=svc.absorbed_by)


SERIES_COLUMNS = ["month_index", "period", "month_label", "value", "peer_median", "peer_p10", "peer_p90",
                  "expected", "lower", "upper", "flagged", "flag_categories", "flag_severity"]

def _peer_band(panel: Panel, code: str) -> pd.DataFrame:
    """Per month: median and 10 / 90 % quantiles of the indicator across all services."""
    key = ("analytics_peer_band", code)
    if key in panel.cache:
        return panel.cache[key]
    obs = panel.indicator(code)
    if obs.empty or code in size_dependent():
        band = pd.DataFrame(columns=["month_index", "peer_median", "peer_p10", "peer_p90"])
    else:
        g = obs.groupby("month_index")["value"]
        band = pd.DataFrame({"peer_median": g.median(), "peer_p10": g.quantile(0.10),
                             "peer_p90": g.quantile(0.90)}).reset_index()
    panel.cache[key] = band
    return band

def _series_frame(panel: Panel, service_id: str, code: str, flags: pd.DataFrame,
                  last_months: int | None) -> pd.DataFrame:
    obs = panel.indicator(code, statistical=False)
    own = obs[obs["service_id"] == service_id][["month_index", "period", "value"]]
    own = own.sort_values("month_index").drop_duplicates("month_index", keep="last")
    if last_months and len(own):
        own = own[own["month_index"] > own["month_index"].max() - last_months]
    out = own.merge(_peer_band(panel, code), on="month_index", how="left")
    if code in peer_indicators():
        cs = peer_scores_of(panel, code)
        if len(cs):
            mine = cs[cs["service_id"] == service_id][["month_index", "expected", "lower", "upper"]]
            out = out.merge(mine, on="month_index", how="left")
    for c in ("peer_median", "peer_p10", "peer_p90", "expected", "lower", "upper"):
        if c not in out:
            out[c] = np.nan
    f = flags[flags["indicator"] == code] if len(flags) else flags
    if len(f):
        agg = (f.sort_values("rank").groupby("month_index")
               .agg(flag_categories=("category", lambda s: ", ".join(CATEGORY_FR.get(c, c) for c in sorted(set(s)))),
                    flag_severity=("severity", "last")).reset_index())
        out = out.merge(agg, on="month_index", how="left")
    else:
        out["flag_categories"] = None
        out["flag_severity"] = None
    out["flagged"] = out["flag_categories"].notna()
    out["month_label"] = [month_label_fr(m) for m in out["month_index"]]
    out["value"] = out["value"].astype(float)
    return out[SERIES_COLUMNS].reset_index(drop=True)

def indicator_series(engine: sa.Engine, actor, service_id: str, indicator: str, panel: Panel | None = None,
                     last_months: int | None = None) -> pd.DataFrame:
    """One service's values of one indicator, month by month, with its peers' median and
    10–90 % band, its expected value and 99.8 % limits against peers (when the peer detector
    compares that indicator), and the months flagged by any detector's finding."""
    check_service(engine, actor, service_id)
    if indicator not in CATALOGUE:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    panel = panel if panel is not None else load_analysis_panel(engine)
    return _series_frame(panel, service_id, indicator, stored_findings(engine, service_id, (indicator,)), last_months)

def reference_lines(engine: sa.Engine, actor, service_id: str, indicator: str) -> list[tuple[str, float]]:
    """Legal or agrément thresholds to draw on an indicator's series: the 90-day limit of
    the initial VIP (R4624-10), the service's ceiling of workers per physician FTE written in
    its agrément, the 80–120 % fee band (D4622-27-6)."""
    check_service(engine, actor, service_id)
    if indicator == "vip_init_median_delay_days":
        from detectors.rules import RulesConfig

        return [("Délai légal de 3 mois (R4624-10)", float(RulesConfig().max_median_vip_delay_days))]
    if indicator == "workers_per_physician_fte":
        with engine.connect() as conn:
            ceiling = conn.execute(sa.select(Service.max_workers_per_physician_fte)
                                   .where(Service.service_id == service_id)).scalar()
        return [("Plafond fixé par l'agrément", float(ceiling))] if ceiling else []
    band = CATALOGUE[indicator].band if indicator in CATALOGUE else None
    if band:
        return [("Bas du tunnel (80 %, D4622-27-6)", band[0]), ("Haut du tunnel (120 %, D4622-27-6)", band[1])]
    return []

def service_small_multiples(engine: sa.Engine, actor, service_id: str, panel: Panel | None = None,
                            last_months: int = 24) -> pd.DataFrame:
    """Every indicator of one service (long frame, ``indicator`` and ``indicator_label``
    columns added), for a grid of small charts."""
    check_service(engine, actor, service_id)
    panel = panel if panel is not None else load_analysis_panel(engine)
    flags = stored_findings(engine, service_id)
    parts = []
    for code in SMALL_MULTIPLE_INDICATORS:
        s = _series_frame(panel, service_id, code, flags, last_months)
        if len(s):
            parts.append(s.assign(indicator=code, indicator_label=indicator_label(code)))
    if not parts:
        return pd.DataFrame(columns=SERIES_COLUMNS + ["indicator", "indicator_label"])
    return pd.concat(parts, ignore_index=True)
