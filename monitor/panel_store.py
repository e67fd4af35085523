"""Load the detection panel from the store (current versions only)."""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from detectors.panel import OBS_COLUMNS, Panel
from monitor.models import Observation, Quarantine, Service


def load_services(conn: sa.Connection) -> pd.DataFrame:
    t = Service.__table__
    df = pd.DataFrame(conn.execute(sa.select(t)).mappings().all(), columns=[c.name for c in t.columns])
    return df.set_index("service_id", drop=False).rename_axis(None)


def load_panel(engine: sa.Engine, upto_month: int | None = None) -> Panel:
    o = Observation.__table__
    q = Quarantine.__table__
    with engine.connect() as conn:
        sel = sa.select(*[o.c[c] for c in OBS_COLUMNS]).where(o.c.is_current.is_(True))
        if upto_month is not None:
            sel = sel.where(o.c.month_index <= upto_month)
        obs = pd.DataFrame(conn.execute(sel).all(), columns=OBS_COLUMNS)
        qsel = sa.select(q.c.service_id, q.c.indicator, q.c.period, q.c.month_index,
                         q.c.reason_code, q.c.reason, q.c.raw).where(q.c.month_index.is_not(None))
        if upto_month is not None:
            qsel = qsel.where(q.c.month_index <= upto_month)
        quar = pd.DataFrame(conn.execute(qsel).all(),
                            columns=["service_id", "indicator", "period", "month_index", "reason_code", "reason", "raw"])
        services = load_services(conn)
    quar["raw_value"] = [r.get("value") if isinstance(r, dict) else None for r in quar["raw"]]
    quar = quar.drop(columns="raw")
    for c in ("service_id", "indicator", "period", "period_kind"):
        if c in obs:
            obs[c] = obs[c].astype(object)
    return Panel(obs, services, quar)
