"""The regional and national view: heat map of peer z-scores, region and department summaries,
the tile map of regions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa

from monitor.accounts.access import readable_regions
from monitor.readmodels.common import (
    KEY_INDICATORS,
    acting_user,
    indicator_label,
    load_analysis_panel,
    peer_indicators,
    peer_scores_of,
    region_filter,
)
from monitor.readmodels.funnel import nearest_month
from monitor.readmodels.services import services_frame
from monitor.store.models import Alert, FollowUp, Service, ServiceDepartment
from monitor.vocabulary import dates as timefmt
from monitor.vocabulary.catalogue import REGIONS
from monitor.vocabulary.formatting import fmt_value
from monitor.vocabulary.statuses import FOLLOW_UP_ACTIVE, QUEUE

if TYPE_CHECKING:
    from detectors.panel import Panel


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
        cs = peer_scores_of(panel, code)
        if cs.empty:
            continue
        m = nearest_month(cs["month_index"].unique(), target)
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
    who = acting_user(engine, actor)
    today = timefmt.today()
    s = Service.__table__
    cond = region_filter(who, s.c.region_code)
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
    who = acting_user(engine, actor)
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
