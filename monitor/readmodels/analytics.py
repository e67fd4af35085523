"""Read-side analytics of the dashboard: the alert queue as a table, services and regions,
indicator series against peers, funnel plots, heat maps and the data steward's tables.

Every function takes the engine and the acting user (a ``User``, ``Actor``, ``Scope`` or an
e-mail, reloaded from the database by :func:`alerts.access.resolve_actor`, as the triage
functions do) and answers within that user's regions only: a service outside them raises
:class:`~alerts.errors.AccessDenied`, and a listing never contains it. In a funnel plot the
services outside the user's regions are anonymous grey points (value and size only; no name
or SIRET leaves this module).

Statistics are not recomputed here: peer z-scores, expected values and limits come from
:func:`detectors.peer.peer_scores` on the stored panel (:func:`monitor.panel_store.load_panel`,
with the cells the data-quality detectors keep out of statistics, as ``detect`` does), funnel
curves from :func:`detectors.funnel.funnel_limits`. Only descriptive figures (peers' median
and 10–90 % band, counts, medians of a region) are computed here. Functions that need the
panel take it as ``panel=`` so that the dashboard can cache it (dashboard/state.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa

from monitor.vocabulary import dates as timefmt
from monitor.accounts.access import Actor, readable_regions, region_clause, require_read, resolve_actor
from monitor.vocabulary.errors import AccessDenied, NotFound
from monitor.vocabulary.formatting import fmt_value
from monitor.vocabulary.labels import CATEGORY_FR, SEVERITY_FR, SEVERITY_RANK
from monitor.vocabulary.statuses import ALERT_STATUSES, FOLLOW_UP_ACTIVE, QUEUE, status_label
from monitor.store import db
from monitor.store.models import (Alert, AlertEvent, DetectionRun, Finding, FollowUp, FollowUpEvent, Observation,
                            Quarantine, Region, Service, ServiceDepartment, Submission, User, UserEvent)
from monitor.pipeline.panel_store import load_panel
from monitor.vocabulary.periods import month_label, month_label_fr
from monitor.vocabulary.catalogue import CATALOGUE, REGIONS

if TYPE_CHECKING:
    from detectors.panel import Panel



@lru_cache(maxsize=1)
def peer_config():
    """The peer detector's configuration (imported lazily: the queue needs no statistics)."""
    from detectors.peer import PeerConfig

    return PeerConfig()


def peer_indicators() -> tuple[str, ...]:
    """The indicators the peer detector compares (with counts: funnel; without: robust z on logs)."""
    cfg = peer_config()
    return tuple(cfg.count_indicators) + tuple(cfg.robust_indicators)


def size_dependent() -> tuple[str, ...]:
    """Indicators whose level depends on the service's size: no peer band (it would mislead)."""
    robust = peer_config().robust_indicators
    return tuple(c for c, i in CATALOGUE.items() if i.kind in ("level", "count") and c not in robust)


def _peer_scores(panel, code: str):
    from detectors.peer import peer_scores

    return peer_scores(panel, code, peer_config())
KEY_INDICATORS = ("vip_init_in_delay_rate", "vip_init_median_delay_days", "reprise_within_8d_rate",
                  "workers_per_physician_fte")
EXTRA_LABELS = {"*": "Rapport mensuel", "agrement": "Agrément", "certification": "Certification"}
SMALL_MULTIPLE_INDICATORS = tuple(c for c in CATALOGUE if c != "workers_followed") + ("workers_followed",)

QUEUE_COLUMNS = ["id", "service_id", "service_name", "region_code", "region_name", "departments",
                 "indicator", "indicator_label", "category", "category_label", "status", "status_label",
                 "severity", "severity_label", "severity_rank", "score", "opened_period", "last_period",
                 "opened_month_index", "last_month_index", "assignee_id", "assignee_name", "snoozed_until",
                 "snoozed", "explanation", "version"]


def indicator_label(code: str) -> str:
    ind = CATALOGUE.get(code)
    return ind.label_fr if ind else EXTRA_LABELS.get(code, code)


# --------------------------------------------------------------------------- who and what version

def _who(engine: sa.Engine, actor) -> Actor:
    if isinstance(actor, Actor):
        # still reload: a role or region changed by an administrator applies at once
        actor = actor.email
    with db.session_scope(engine) as s:
        return resolve_actor(s, actor)


def session_user(engine: sa.Engine, email: str | None) -> Actor | None:
    """The signed-in user as stored now, or None if unknown or disabled (the session ends)."""
    if not email:
        return None
    try:
        return _who(engine, email)
    except AccessDenied:
        return None


def data_version(engine: sa.Engine) -> str:
    """A cheap fingerprint of everything the dashboard shows: it changes with any new alert
    event, follow-up event, detection run, submission, observation or account change, so that
    cached reads keyed on it are never stale."""
    def mx(col):
        return sa.select(sa.func.max(col)).scalar_subquery()

    q = sa.select(mx(Alert.id), mx(Alert.updated_at), mx(AlertEvent.id), mx(FollowUpEvent.id),
                  mx(DetectionRun.id), mx(Submission.id), mx(Observation.id), mx(UserEvent.id))
    with engine.connect() as conn:
        row = conn.execute(q).one()
    return "|".join("" if v is None else str(v) for v in row) + f"|{timefmt.today().isoformat()}"


def panel_version(engine: sa.Engine) -> str:
    """Fingerprint of the stored panel (observations, quarantine, register)."""
    q = sa.select(sa.select(sa.func.max(Observation.id)).scalar_subquery(),
                  sa.select(sa.func.max(Quarantine.id)).scalar_subquery(),
                  sa.select(sa.func.max(Service.updated_at)).scalar_subquery(),
                  sa.select(sa.func.count()).select_from(Service).scalar_subquery())
    with engine.connect() as conn:
        return "|".join("" if v is None else str(v) for v in conn.execute(q).one())


def load_analysis_panel(engine: sa.Engine) -> "Panel":
    """The stored panel as the statistical detectors see it: current observations, with the
    service-months of undeclared size jumps kept out (as ``detect`` does)."""
    from detectors.base import exclude_faulty_cells
    from detectors.registry import default_detectors

    panel = load_panel(engine)
    if panel.last_month is not None:
        exclude_faulty_cells(panel, default_detectors())
    return panel


def _region_filter(who: Actor, column, region: str | None = None):
    return region_clause(column, readable_regions(who, region))


# --------------------------------------------------------------------------- the alert queue

def queue_frame(engine: sa.Engine, actor, today: date | None = None) -> pd.DataFrame:
    """Every alert of the user's regions (all statuses) as one table, most severe first.

    One SQL query and vectorised labelling, so 10,000 alerts take a few tens of
    milliseconds; filter it with :func:`filter_queue`.
    """
    today = today or timefmt.today()
    who = _who(engine, actor)
    a, s, r, u = Alert.__table__, Service.__table__, Region.__table__, User.__table__
    q = (sa.select(a.c.id, a.c.service_id, s.c.name, s.c.region_code, r.c.name, s.c.departments,
                   a.c.indicator, a.c.category, a.c.status, a.c.severity, a.c.score, a.c.opened_period,
                   a.c.last_period, a.c.opened_month_index, a.c.last_month_index, a.c.assignee_id,
                   u.c.name, a.c.snoozed_until, a.c.explanation, a.c.version)
         .select_from(a.join(s, s.c.service_id == a.c.service_id).join(r, r.c.code == s.c.region_code)
                      .outerjoin(u, u.c.id == a.c.assignee_id))
         .where(_region_filter(who, s.c.region_code)))
    cols = ["id", "service_id", "service_name", "region_code", "region_name", "departments", "indicator",
            "category", "status", "severity", "score", "opened_period", "last_period", "opened_month_index",
            "last_month_index", "assignee_id", "assignee_name", "snoozed_until", "explanation", "version"]
    with engine.connect() as conn:
        result = conn.execute(q)
        rows = result.cursor.fetchall() if result.cursor is not None else []
    df = pd.DataFrame.from_records(rows, columns=cols)
    labels = {c: indicator_label(c) for c in df["indicator"].unique()}
    df["indicator_label"] = df["indicator"].map(labels)
    df["category_label"] = df["category"].map(CATEGORY_FR).fillna(df["category"])
    df["status_label"] = df["status"].map(status_label)
    df["severity_label"] = df["severity"].map(SEVERITY_FR).fillna(df["severity"])
    df["severity_rank"] = df["severity"].map(SEVERITY_RANK).fillna(-1).astype(int)
    df["score"] = pd.to_numeric(df["score"], errors="coerce").astype(float)
    snooze = pd.to_datetime(df["snoozed_until"], errors="coerce")
    df["snoozed_until"] = snooze.dt.date
    df["snoozed"] = (snooze > pd.Timestamp(today)).fillna(False).astype(bool)
    df["assignee_id"] = df["assignee_id"].astype("Int64")
    df["departments"] = df["departments"].fillna("").astype(str)
    df = df.sort_values(["severity_rank", "score", "id"], ascending=[False, False, True], kind="mergesort")
    return df[QUEUE_COLUMNS].reset_index(drop=True)


@dataclass
class QueueFilters:
    """What the queue page lets a user narrow the table to (empty = no restriction)."""
    regions: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    indicators: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    statuses: tuple[str, ...] = QUEUE
    period_from: str | None = None      # YYYY-MM: alerts still active on or after this month
    period_to: str | None = None        # YYYY-MM: alerts opened on or before this month
    assignee_id: int | None = None
    include_snoozed: bool = False
    text: str = ""


def _month(period: str | None) -> int | None:
    if not period:
        return None
    y, m = period.split("-")[:2]
    return int(y) * 12 + int(m) - 1


def filter_queue(df: pd.DataFrame, f: QueueFilters) -> pd.DataFrame:
    """The rows of :func:`queue_frame` that pass the filters (vectorised)."""
    keep = pd.Series(True, index=df.index)
    if f.regions:
        keep &= df["region_code"].isin(f.regions)
    if f.departments:
        pattern = "(?:^|;)(?:" + "|".join(re.escape(d) for d in f.departments) + ")(?:;|$)"
        keep &= df["departments"].str.contains(pattern, regex=True)
    if f.categories:
        keep &= df["category"].isin(f.categories)
    if f.indicators:
        keep &= df["indicator"].isin(f.indicators)
    if f.severities:
        keep &= df["severity"].isin(f.severities)
    if f.statuses:
        keep &= df["status"].isin(f.statuses)
    lo, hi = _month(f.period_from), _month(f.period_to)
    if lo is not None:
        keep &= df["last_month_index"] >= lo
    if hi is not None:
        keep &= df["opened_month_index"] <= hi
    if f.assignee_id is not None:
        keep &= df["assignee_id"].eq(f.assignee_id).fillna(False).astype(bool)
    if not f.include_snoozed:
        keep &= ~df["snoozed"]
    if f.text.strip():
        t = f.text.strip()
        keep &= (df["service_name"].str.contains(t, case=False, regex=False)
                 | df["service_id"].str.contains(t, regex=False)
                 | df["explanation"].str.contains(t, case=False, regex=False))
    return df[keep]


SORTS = {
    "gravite": ("Gravité puis score", ["severity_rank", "score", "id"], [False, False, True]),
    "recentes": ("Période la plus récente", ["last_month_index", "severity_rank", "score"], [False, False, False]),
    "anciennes": ("Ouvertes depuis le plus longtemps", ["opened_month_index", "severity_rank"], [True, False]),
    "service": ("Service (A → Z)", ["service_name", "severity_rank", "score"], [True, False, False]),
    "numero": ("N° d'alerte", ["id"], [True]),
}


def sort_queue(df: pd.DataFrame, key: str = "gravite") -> pd.DataFrame:
    _, by, asc = SORTS.get(key, SORTS["gravite"])
    return df.sort_values(by, ascending=asc, kind="mergesort")


def queue_counts(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Counts by severity and by status (every status and severity present as a key)."""
    sev = df["severity"].value_counts()
    stat = df["status"].value_counts()
    return {"severity": {k: int(sev.get(k, 0)) for k in ("high", "medium", "low")},
            "status": {str(k): int(stat.get(k, 0)) for k in ALERT_STATUSES}}


def queue_options(df: pd.DataFrame) -> dict[str, list]:
    """Values the filters can offer, from the user's own alerts."""
    deps = sorted({d for s in df["departments"].unique() for d in s.split(";") if d})
    months = sorted(set(df["opened_month_index"].dropna().astype(int)) | set(df["last_month_index"].dropna().astype(int)))
    months = list(range(months[0], months[-1] + 1)) if months else []
    return {"regions": sorted(df["region_code"].unique()),
            "departments": deps,
            "categories": [c for c in CATEGORY_FR if c in set(df["category"])],
            "indicators": sorted(df["indicator"].unique(), key=indicator_label),
            "months": [month_label(m) for m in months]}


# --------------------------------------------------------------------------- services

SERVICE_COLUMNS = ["service_id", "name", "region_code", "region_name", "departments", "workers_followed",
                   "companies", "agrement_start", "agrement_end", "certification_level", "certification_end",
                   "open_alerts", "high_alerts", "active_follow_ups"]


def services_frame(engine: sa.Engine, actor, region: str | None = None,
                   department: str | None = None) -> pd.DataFrame:
    """Services of the user's regions (optionally one region, one department) with their
    open alerts and active follow-ups."""
    who = _who(engine, actor)
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
         .where(_region_filter(who, s.c.region_code, region)))
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
        row = session.execute(sa.select(Service, Region.name).join(Region, Region.code == Service.region_code)
                              .where(Service.service_id == str(service_id).strip())).one_or_none()
        if row is None:
            raise NotFound(f"Service {service_id} introuvable.")
        svc, region_name = row
        require_read(who, svc.region_code, "ce service")
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


def _check_service(engine: sa.Engine, actor, service_id: str) -> tuple[Actor, str]:
    with db.session_scope(engine) as session:
        who = resolve_actor(session, actor)
        region = session.scalar(sa.select(Service.region_code).where(Service.service_id == service_id))
        if region is None:
            raise NotFound(f"Service {service_id} introuvable.")
        require_read(who, region, "ce service")
        return who, region


# --------------------------------------------------------------------------- series against peers

SERIES_COLUMNS = ["month_index", "period", "month_label", "value", "peer_median", "peer_p10", "peer_p90",
                  "expected", "lower", "upper", "flagged", "flag_categories", "flag_severity"]


def _findings(engine: sa.Engine, service_id: str, indicators: tuple[str, ...] | None = None) -> pd.DataFrame:
    q = (sa.select(Finding.indicator, Finding.month_index, Finding.category, Finding.severity)
         .where(Finding.service_id == service_id))
    if indicators:
        q = q.where(Finding.indicator.in_(indicators))
    with engine.connect() as conn:
        f = pd.DataFrame([tuple(r) for r in conn.execute(q).all()],
                         columns=["indicator", "month_index", "category", "severity"])
    if f.empty:
        return f
    f["rank"] = f["severity"].map(SEVERITY_RANK).fillna(0)
    return f


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
        cs = _peer_scores(panel, code)
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
    _check_service(engine, actor, service_id)
    if indicator not in CATALOGUE:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    panel = panel if panel is not None else load_analysis_panel(engine)
    return _series_frame(panel, service_id, indicator, _findings(engine, service_id, (indicator,)), last_months)


def reference_lines(engine: sa.Engine, actor, service_id: str, indicator: str) -> list[tuple[str, float]]:
    """Legal or agrément thresholds to draw on an indicator's series: the 90-day limit of
    the initial VIP (R4624-10), the service's ceiling of workers per physician FTE written in
    its agrément, the 80–120 % fee band (D4622-27-6)."""
    _check_service(engine, actor, service_id)
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
    _check_service(engine, actor, service_id)
    panel = panel if panel is not None else load_analysis_panel(engine)
    flags = _findings(engine, service_id)
    parts = []
    for code in SMALL_MULTIPLE_INDICATORS:
        s = _series_frame(panel, service_id, code, flags, last_months)
        if len(s):
            parts.append(s.assign(indicator=code, indicator_label=indicator_label(code)))
    if not parts:
        return pd.DataFrame(columns=SERIES_COLUMNS + ["indicator", "indicator_label"])
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------- funnel plot

@dataclass
class FunnelData:
    """What a funnel plot of one indicator and month needs.

    ``points``: one row per service reporting that month: ``x`` (size: denominator or
    workers followed), ``value``, ``zw`` (worse-side z; NaN for out-of-scope services),
    ``outside`` (beyond the 99.8 % limits), ``in_scope``, ``highlight``, and ``service_id``
    / ``name`` only for services of the user's regions (None otherwise).
    ``curves``: ``x``, ``lower_95``, ``upper_95``, ``lower_998``, ``upper_998`` (indicator
    scale), empty when the indicator has no limits. ``method``: ``funnel`` (counts),
    ``robust`` (log scale, limits constant in size) or ``none`` (no peer comparison).
    """
    indicator: str
    month_index: int | None
    method: str
    target: float | None
    x_label: str
    points: pd.DataFrame
    curves: pd.DataFrame
    note: str = ""
    band: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def period_label(self) -> str:
        return month_label_fr(self.month_index) if self.month_index is not None else "—"


POINT_COLUMNS = ["service_id", "name", "region_code", "x", "value", "zw", "outside", "in_scope", "highlight",
                 "value_text"]


def _nearest_month(months: np.ndarray, target: int | None) -> int | None:
    if len(months) == 0:
        return None
    if target is None:
        return int(months.max())
    before = months[months <= target]
    return int(before.max()) if len(before) else int(months.min())


def funnel_data(engine: sa.Engine, actor, indicator: str, month_index: int | None = None,
                highlight: str | None = None, panel: Panel | None = None) -> FunnelData:
    """Every service's value of ``indicator`` in a month (default: the latest; a quarterly or
    annual indicator uses its latest period up to that month) against its size, with the
    peer detector's limits. Services outside the user's regions are anonymous."""
    who = _who(engine, actor)
    if highlight is not None:
        _check_service(engine, who.email, highlight)
    ind = CATALOGUE.get(indicator)
    empty_pts = pd.DataFrame(columns=POINT_COLUMNS)
    empty_curves = pd.DataFrame(columns=["x", "lower_95", "upper_95", "lower_998", "upper_998"])
    if ind is None:
        return FunnelData(indicator, month_index, "none", None, "", empty_pts, empty_curves,
                          note="Pas de comparaison aux pairs pour ce type d'alerte.")
    if indicator == "workers_followed":
        return FunnelData(indicator, month_index, "none", None, "", empty_pts, empty_curves,
                          note="L'effectif suivi mesure la taille du service : pas de comparaison aux pairs "
                               "(voir son évolution).")
    panel = panel if panel is not None else load_analysis_panel(engine)
    obs = panel.indicator(indicator)
    m = _nearest_month(obs["month_index"].unique(), month_index)
    if m is None:
        return FunnelData(indicator, month_index, "none", None, "", empty_pts, empty_curves,
                          note="Aucune donnée pour cet indicateur.")
    services = panel.services
    size = panel.indicator("workers_followed", statistical=False)
    size = size[size["month_index"] == m].drop_duplicates("service_id", keep="last").set_index("service_id")["value"]
    curves = empty_curves
    target = None
    note = ""
    band = ind.band
    cfg = peer_config()
    if indicator in peer_indicators():
        cs = _peer_scores(panel, indicator)
        cs = cs[cs["month_index"] == m] if len(cs) else cs
    else:
        cs = pd.DataFrame()
    if len(cs):
        pts = cs[["service_id", "value", "zw", "lower", "upper", "denominator", "expected"]].copy()
        if indicator in cfg.count_indicators and cs["adjustment"].notna().all():
            from detectors.peer import funnel_curves

            method, x_label = "funnel", ("Nombre de cas (dénominateur)" if ind.kind == "proportion"
                                         else "Salariés suivis")
            pts["x"] = pts["denominator"]
            target = float(pts["expected"].iloc[0])
            # a smooth curve, through every service's own size: there it is the detector's limit
            grid = np.geomspace(max(1.0, pts["x"].min() / 1.25), pts["x"].max() * 1.25, 160)
            xs = np.unique(np.concatenate([grid, pts["x"].to_numpy(dtype=float)]))
            curves = funnel_curves(indicator, cs, xs)
        else:
            method, x_label = "robust", "Salariés suivis"
            pts["x"] = pts["service_id"].map(size)
            target = float(pts["expected"].iloc[0])
            xs = np.array([max(1.0, pts["x"].min() * 0.8), pts["x"].max() * 1.1]) if pts["x"].notna().any() \
                else np.array([1.0, 1.0])
            lo, hi = float(pts["lower"].iloc[0]), float(pts["upper"].iloc[0])
            curves = pd.DataFrame({"x": xs, "lower_95": np.nan, "upper_95": np.nan,
                                   "lower_998": lo, "upper_998": hi})
            note = "Comparaison robuste sur l'échelle logarithmique : limites à 99,8 % indépendantes de la taille."
        pts["outside"] = (pts["value"] < pts["lower"]) | (pts["value"] > pts["upper"])
    else:
        method, x_label = "none", "Salariés suivis"
        o = obs[obs["month_index"] == m].drop_duplicates("service_id", keep="last")
        pts = o[["service_id", "value"]].copy()
        pts["x"] = pts["service_id"].map(size)
        pts["zw"] = np.nan
        if band is not None:
            pts["outside"] = (pts["value"] < band[0]) | (pts["value"] > band[1])
            note = (f"Cet indicateur est comparé à sa plage réglementaire "
                    f"({fmt_value(indicator, band[0])} – {fmt_value(indicator, band[1])}).")
        else:
            pts["outside"] = False
            note = "Indicateur dépendant de la taille du service : pas de limites de comparaison aux pairs."
    region = services["region_code"].reindex(pts["service_id"]).to_numpy()
    names = services["name"].reindex(pts["service_id"]).to_numpy()
    in_scope = np.array([who.covers(r) if isinstance(r, str) else False for r in region], dtype=bool)
    out = pd.DataFrame({
        "service_id": np.where(in_scope, pts["service_id"].to_numpy(dtype=object), None),
        "name": np.where(in_scope, names, None),
        "region_code": np.where(in_scope, region, None),
        "x": pts["x"].to_numpy(dtype=float),
        "value": pts["value"].to_numpy(dtype=float),
        "zw": np.where(in_scope, pts["zw"].to_numpy(dtype=float), np.nan),
        "outside": pts["outside"].fillna(False).to_numpy(dtype=bool),
        "in_scope": in_scope,
        "highlight": (pts["service_id"].to_numpy(dtype=object) == highlight) & in_scope,
    })
    out["value_text"] = [fmt_value(indicator, v) for v in out["value"]]
    out = out[np.isfinite(out["x"]) & np.isfinite(out["value"])]
    # out-of-scope rows are shuffled into a stable order unrelated to their SIRET
    out = out.sort_values(["in_scope", "x"], kind="mergesort").reset_index(drop=True)
    curves = curves.replace([np.inf, -np.inf], np.nan).reset_index(drop=True)
    return FunnelData(indicator, m, method, target, x_label, out[POINT_COLUMNS], curves, note=note, band=band)


# --------------------------------------------------------------------------- heat map, regions

HEATMAP_COLUMNS = ["service_id", "service_name", "region_code", "indicator", "indicator_label", "month_index",
                   "value", "value_text", "zw"]


def analysis_months(panel: Panel) -> list[int]:
    """Months with monthly data, oldest first."""
    obs = panel.observations
    return sorted(int(m) for m in obs.loc[obs["period_kind"] == "M", "month_index"].unique())


def peer_heatmap(engine: sa.Engine, actor, month_index: int | None = None, region: str | None = None,
                 department: str | None = None, panel: Panel | None = None) -> pd.DataFrame:
    """Services (of the user's regions, optionally one region or department) × the peer
    detector's indicators: the worse-side peer z of the month (positive = worse than peers).
    A quarterly indicator shows its latest quarter up to that month."""
    svc = services_frame(engine, actor, region=region, department=department)
    if svc.empty:
        return pd.DataFrame(columns=HEATMAP_COLUMNS)
    panel = panel if panel is not None else load_analysis_panel(engine)
    months = analysis_months(panel)
    target = month_index if month_index is not None else (months[-1] if months else None)
    ids = set(svc["service_id"])
    names = dict(zip(svc["service_id"], svc["name"]))
    regions = dict(zip(svc["service_id"], svc["region_code"]))
    parts = []
    for code in peer_indicators():
        cs = _peer_scores(panel, code)
        if cs.empty:
            continue
        m = _nearest_month(cs["month_index"].unique(), target)
        if target is not None and m is not None and target - m > 3:
            continue
        sub = cs[(cs["month_index"] == m) & cs["service_id"].isin(ids)]
        parts.append(pd.DataFrame({"service_id": sub["service_id"].to_numpy(), "indicator": code,
                                   "month_index": m, "value": sub["value"].to_numpy(dtype=float),
                                   "zw": sub["zw"].to_numpy(dtype=float)}))
    if not parts:
        return pd.DataFrame(columns=HEATMAP_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["service_name"] = out["service_id"].map(names)
    out["region_code"] = out["service_id"].map(regions)
    out["indicator_label"] = out["indicator"].map(indicator_label)
    out["value_text"] = [fmt_value(c, v) for c, v in zip(out["indicator"], out["value"])]
    return out[HEATMAP_COLUMNS]


def heatmap_top(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` services of a heat map whose worst indicator is furthest on the worse side."""
    if df.empty or df["service_id"].nunique() <= n:
        return df
    worst = df.groupby("service_id")["zw"].max().sort_values(ascending=False)
    return df[df["service_id"].isin(worst.index[:n])]


REGION_COLUMNS = ["region_code", "region_name", "services", "workers_followed", "open_alerts", "high", "medium",
                  "low", "follow_ups", "overdue_follow_ups"] + [f"median_{c}" for c in KEY_INDICATORS]


def region_summary(engine: sa.Engine, actor, panel: Panel | None = None) -> pd.DataFrame:
    """Per region of the user's scope: services, alerts to handle (open or acknowledged) by
    severity, active and overdue follow-ups, and the medians of key indicators over the
    region's services at the latest month."""
    who = _who(engine, actor)
    today = timefmt.today()
    s = Service.__table__
    cond = _region_filter(who, s.c.region_code)
    with engine.connect() as conn:
        svc = pd.DataFrame([tuple(x) for x in conn.execute(
            sa.select(s.c.service_id, s.c.region_code, s.c.workers_followed).where(cond)).all()],
            columns=["service_id", "region_code", "workers_followed"])
        al = pd.DataFrame([tuple(x) for x in conn.execute(
            sa.select(Service.region_code, Alert.severity, sa.func.count())
            .join(Service, Service.service_id == Alert.service_id)
            .where(Alert.status.in_(QUEUE), cond).group_by(Service.region_code, Alert.severity)).all()],
            columns=["region_code", "severity", "n"])
        fu = pd.DataFrame([tuple(x) for x in conn.execute(
            sa.select(Service.region_code, sa.func.count(),
                      sa.func.sum(sa.case((FollowUp.due_date < today, 1), else_=0)))
            .join(Service, Service.service_id == FollowUp.service_id)
            .where(FollowUp.status.in_(FOLLOW_UP_ACTIVE), cond).group_by(Service.region_code)).all()],
            columns=["region_code", "follow_ups", "overdue_follow_ups"])
    codes = [c for c in REGIONS if who.covers(c)]
    out = pd.DataFrame({"region_code": codes, "region_name": [REGIONS[c][0] for c in codes]})
    g = svc.groupby("region_code")
    out["services"] = out["region_code"].map(g.size()).fillna(0).astype(int)
    out["workers_followed"] = out["region_code"].map(g["workers_followed"].sum()).fillna(0).astype(int)
    piv = al.pivot_table(index="region_code", columns="severity", values="n", aggfunc="sum", fill_value=0)
    for sev in ("high", "medium", "low"):
        out[sev] = out["region_code"].map(piv[sev] if sev in piv else pd.Series(dtype=int)).fillna(0).astype(int)
    out["open_alerts"] = out[["high", "medium", "low"]].sum(axis=1)
    fu = fu.set_index("region_code")
    out["follow_ups"] = out["region_code"].map(fu["follow_ups"]).fillna(0).astype(int)
    out["overdue_follow_ups"] = out["region_code"].map(fu["overdue_follow_ups"]).fillna(0).astype(int)
    panel = panel if panel is not None else load_analysis_panel(engine)
    region_of = dict(zip(svc["service_id"], svc["region_code"]))
    for code in KEY_INDICATORS:
        obs = panel.indicator(code)
        col = f"median_{code}"
        if obs.empty:
            out[col] = np.nan
            continue
        last = obs[obs["month_index"] == obs["month_index"].max()]
        last = last.assign(region_code=last["service_id"].map(region_of)).dropna(subset=["region_code"])
        out[col] = out["region_code"].map(last.groupby("region_code")["value"].median())
    return out[REGION_COLUMNS]


def department_summary(engine: sa.Engine, actor, region: str) -> pd.DataFrame:
    """Departments of a region: services that cover each, workers followed, alerts to handle."""
    who = _who(engine, actor)
    readable_regions(who, region)
    svc = services_frame(engine, who.email, region=region)
    with engine.connect() as conn:
        sd = pd.DataFrame([tuple(x) for x in conn.execute(
            sa.select(ServiceDepartment.service_id, ServiceDepartment.department_code)
            .join(Service, Service.service_id == ServiceDepartment.service_id)
            .where(Service.region_code == region)).all()], columns=["service_id", "department_code"])
    if sd.empty:
        return pd.DataFrame(columns=["department_code", "services", "workers_followed", "open_alerts", "high_alerts"])
    m = sd.merge(svc, on="service_id")
    out = (m.groupby("department_code")
           .agg(services=("service_id", "nunique"), workers_followed=("workers_followed", "sum"),
                open_alerts=("open_alerts", "sum"), high_alerts=("high_alerts", "sum"))
           .reset_index())
    return out


@dataclass(frozen=True)
class Tile:
    code: str
    short: str
    col: int
    row: int


#: a tile map of the 18 regions (metropolitan grid; overseas tiles on the right)
TILES: tuple[Tile, ...] = (
    Tile("32", "HDF", 2, 0), Tile("28", "NOR", 1, 1), Tile("11", "IDF", 2, 1), Tile("44", "GES", 3, 1),
    Tile("53", "BRE", 0, 2), Tile("52", "PDL", 1, 2), Tile("24", "CVL", 2, 2), Tile("27", "BFC", 3, 2),
    Tile("75", "NAQ", 1, 3), Tile("84", "ARA", 2, 3), Tile("76", "OCC", 1, 4), Tile("93", "PAC", 2, 4),
    Tile("94", "COR", 3, 4),
    Tile("01", "GUA", 5, 0), Tile("02", "MTQ", 5, 1), Tile("03", "GUF", 5, 2), Tile("04", "LRE", 5, 3),
    Tile("06", "MAY", 5, 4),
)


def region_tiles(summary: pd.DataFrame) -> pd.DataFrame:
    """The tile map's data: every region's tile; figures only for regions in ``summary``
    (the user's scope), the others are drawn empty."""
    s = summary.set_index("region_code") if len(summary) else summary
    rows = []
    for t in TILES:
        inside = t.code in s.index if len(summary) else False
        rows.append({"region_code": t.code, "region_name": REGIONS[t.code][0], "short": t.short,
                     "col": t.col, "row": t.row, "in_scope": inside,
                     "open_alerts": int(s.at[t.code, "open_alerts"]) if inside else None,
                     "high": int(s.at[t.code, "high"]) if inside else None,
                     "services": int(s.at[t.code, "services"]) if inside else None})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- data received

def service_reception(engine: sa.Engine, actor, service_id: str) -> dict[str, pd.DataFrame]:
    """What one service sent: submissions with the rows accepted for it and the periods they
    covered, its rejected rows with their reasons, and its missing monthly reports."""
    from monitor.readmodels import steward

    _, region = _check_service(engine, actor, service_id)
    o = Observation.__table__
    q = (sa.select(Submission.id, Submission.received_at, Submission.source, Submission.file_name,
                   sa.func.count(o.c.id), sa.func.min(o.c.period), sa.func.max(o.c.period))
         .join(o, o.c.submission_id == Submission.id)
         .where(o.c.service_id == service_id)
         .group_by(Submission.id, Submission.received_at, Submission.source, Submission.file_name)
         .order_by(Submission.id.desc()).limit(100))
    with engine.connect() as conn:
        subs = pd.DataFrame([tuple(x) for x in conn.execute(q).all()],
                            columns=["submission_id", "received_at", "source", "file_name", "rows",
                                     "first_period", "last_period"])
    quar = steward.quarantine_rows(engine, regions=[region], limit=2000)
    quar = quar[quar["service_id"] == service_id].reset_index(drop=True)
    rec = steward.services_reception(engine, regions=[region])
    rec = rec[rec["service_id"] == service_id].reset_index(drop=True)
    return {"submissions": subs, "quarantine": quar, "reception": rec}


def steward_tables(engine: sa.Engine, actor, months: int = 12) -> dict[str, pd.DataFrame]:
    """The data steward's tables within the user's regions (monitor.readmodels.steward): reception per
    service (missing reports), rejected rows, rejections by reason, received files; and, for
    the national level and administrators only, the sources' pulls and the job runs with
    their error texts (a regional user sees the same tables without error details)."""
    from monitor.pipeline import jobs
    from monitor.readmodels import steward

    who = _who(engine, actor)
    regions = who.regions
    out = {
        "reception": steward.services_reception(engine, regions=regions, months=months),
        "quarantine": steward.quarantine_rows(engine, regions=regions, limit=500),
        "quarantine_summary": steward.quarantine_summary(engine, regions=regions),
        "submissions": steward.submissions(engine, limit=200, regions=regions),
    }
    try:
        from monitor.config.settings import load_settings

        settings = load_settings()
    except Exception:  # no configuration file: pulls recorded so far only
        settings = None
    try:
        sources = steward.sources_status(engine, settings)
    except Exception:
        sources = steward.sources_status(engine)
    runs = jobs.recent_runs(engine, limit=50)
    if regions is not None:
        sources = sources.drop(columns=["last_error"], errors="ignore")
        runs = runs.drop(columns=["error", "counts"], errors="ignore")
    else:
        runs["counts"] = [", ".join(f"{k} {v}" for k, v in (c or {}).items() if k != "notes")
                          if isinstance(c, dict) else "" for c in runs["counts"]]
    out["sources"] = sources
    out["job_runs"] = runs
    return out
