"""CPOM objectives with their attainment, for one service and for the regional view
(« pilotage territorial »: share of objectives met per region and per indicator)."""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from monitor.dialogue.attainment import ATTAINMENT_COLUMNS, TREND_FR, attainment, yearly_values
from monitor.dialogue.scope import region_condition, service_region, who
from monitor.readmodels.common import indicator_label
from monitor.store.models import Objective, Observation, Region, Service
from monitor.vocabulary.formatting import fmt_value

SERVICE_COLUMNS = ATTAINMENT_COLUMNS + ["indicator_label", "target_text", "value_text", "status_fr", "trend_fr"]
REGION_COLUMNS = ["region_code", "region_name", "indicator", "indicator_label", "year", "objectives", "assessed",
                  "met", "share_met"]


def _objectives(conn: sa.Connection, where) -> pd.DataFrame:
    o = Objective.__table__
    rows = conn.execute(sa.select(o.c.service_id, o.c.indicator, o.c.year, o.c.target, o.c.label)
                        .select_from(o.join(Service.__table__, Service.service_id == o.c.service_id))
                        .where(where).order_by(o.c.service_id, o.c.indicator, o.c.year)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["service_id", "indicator", "year", "target", "label"])


def _yearly(conn: sa.Connection, objectives: pd.DataFrame) -> pd.DataFrame:
    """Yearly values of the indicators and services that have objectives (current observations)."""
    if objectives.empty:
        return yearly_values(pd.DataFrame())
    t = Observation.__table__
    lo, hi = int(objectives["year"].min()) - 1, int(objectives["year"].max())
    q = (sa.select(t.c.service_id, t.c.indicator, t.c.period_kind, t.c.month_index, t.c.value, t.c.numerator,
                   t.c.denominator)
         .where(t.c.is_current.is_(True), t.c.indicator.in_(sorted(objectives["indicator"].unique())),
                t.c.service_id.in_(sorted(objectives["service_id"].unique())),
                t.c.month_index.between(lo * 12, hi * 12 + 11)))
    obs = pd.DataFrame([tuple(r) for r in conn.execute(q).all()],
                       columns=["service_id", "indicator", "period_kind", "month_index", "value", "numerator",
                                "denominator"])
    for c in ("value", "numerator", "denominator"):
        obs[c] = pd.to_numeric(obs[c], errors="coerce").astype(float)
    return yearly_values(obs)


def status_fr(met, complete) -> str:
    if met is None or met != met:
        return "pas de données"
    text = "atteint" if met else "non atteint"
    return text + (" (année incomplète)" if complete is False else "")


def _decorate(att: pd.DataFrame) -> pd.DataFrame:
    att = att.copy()
    att["indicator_label"] = att["indicator"].map(indicator_label)
    att["target_text"] = [fmt_value(c, float(t)) for c, t in zip(att["indicator"], att["target"])]
    att["value_text"] = [fmt_value(c, None if v != v else float(v)) for c, v in zip(att["indicator"], att["value"])]
    att["status_fr"] = [status_fr(m, c) for m, c in zip(att["met"], att["complete"])]
    att["trend_fr"] = att["trend"].map(lambda t: TREND_FR.get(t, "—"))
    return att[SERVICE_COLUMNS]


def service_objectives(engine: sa.Engine, actor, service_id: str) -> pd.DataFrame:
    """A service's CPOM objectives, year by year, with the achieved value, whether it is met
    on the indicator's worse side, and the trend against the year before."""
    service_region(engine, who(engine, actor), service_id)
    with engine.connect() as conn:
        obj = _objectives(conn, Objective.service_id == service_id)
        att = attainment(obj, _yearly(conn, obj))
    return _decorate(att)


def objectives_frame(engine: sa.Engine, actor, region: str | None = None) -> pd.DataFrame:
    """Every objective of the user's regions (or one region) with its attainment."""
    user = who(engine, actor)
    with engine.connect() as conn:
        obj = _objectives(conn, region_condition(user, Service.region_code, region))
        att = attainment(obj, _yearly(conn, obj))
        regions = dict(conn.execute(sa.select(Service.service_id, Service.region_code)).all())
    att = _decorate(att)
    att.insert(1, "region_code", att["service_id"].map(regions))
    return att


def territorial_steering(engine: sa.Engine, actor, region: str | None = None,
                         year: int | None = None) -> pd.DataFrame:
    """« Pilotage territorial »: per region, indicator and year, how many objectives there
    are, how many can be assessed (data received) and the share of those that are met."""
    att = objectives_frame(engine, actor, region)
    if year is not None:
        att = att[att["year"] == int(year)]
    if att.empty:
        return pd.DataFrame(columns=REGION_COLUMNS)
    att = att.assign(assessed=att["met"].notna(), met_b=att["met"].eq(True))
    g = (att.groupby(["region_code", "indicator", "year"])
         .agg(objectives=("service_id", "size"), assessed=("assessed", "sum"), met=("met_b", "sum"))
         .reset_index())
    g["share_met"] = g["met"] / g["assessed"].where(g["assessed"] > 0)
    with engine.connect() as conn:
        names = dict(conn.execute(sa.select(Region.code, Region.name)).all())
    g["region_name"] = g["region_code"].map(names)
    g["indicator_label"] = g["indicator"].map(indicator_label)
    return g[REGION_COLUMNS].sort_values(["region_code", "year", "indicator"]).reset_index(drop=True)


def missed_objectives(engine: sa.Engine, actor, region: str, year: int) -> pd.DataFrame:
    """Objectives of ``year`` not met, per service of a region (for the control programme)."""
    att = objectives_frame(engine, actor, region)
    att = att[(att["year"] == int(year)) & att["met"].eq(False)]
    return att

