"""Load the detection panel from the store (current versions only)."""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from detectors.panel import OBS_COLUMNS, Panel
from monitor.store.models import Observation, Quarantine, Service
from monitor.vocabulary.periods import PERIOD_STEP, current_month_index


def load_services(conn: sa.Connection) -> pd.DataFrame:
    t = Service.__table__
    df = pd.DataFrame(conn.execute(sa.select(t)).mappings().all(), columns=[c.name for c in t.columns])
    return df.set_index("service_id", drop=False).rename_axis(None)


def _frame(conn: sa.Connection, statement, columns: list[str]) -> pd.DataFrame:
    """Rows of a select as a DataFrame, fetched through the DBAPI cursor (much faster than Row objects)."""
    result = conn.execute(statement)
    rows = result.cursor.fetchall() if result.cursor is not None else []
    return pd.DataFrame.from_records(rows, columns=columns)


def not_future(o: sa.Table, current: int | None = None):
    """SQL condition: the observation's period has started (a far-future period stored before
    ingest quarantined them, e.g. 2099-12, must not drag detection ahead)."""
    current = current_month_index() if current is None else current
    return sa.or_(*[sa.and_(o.c.period_kind == kind, o.c.month_index - step + 1 <= current)
                    for kind, step in PERIOD_STEP.items()])


def load_panel(engine: sa.Engine, upto_month: int | None = None) -> Panel:
    o = Observation.__table__
    q = Quarantine.__table__
    with engine.connect() as conn:
        sel = sa.select(*[o.c[c] for c in OBS_COLUMNS]).where(o.c.is_current.is_(True)).where(not_future(o))
        if upto_month is not None:
            sel = sel.where(o.c.month_index <= upto_month)
        obs = _frame(conn, sel, OBS_COLUMNS)
        qsel = sa.select(q.c.service_id, q.c.indicator, q.c.period, q.c.month_index,
                         q.c.reason_code, q.c.reason, q.c.raw).where(q.c.month_index.is_not(None))
        if upto_month is not None:
            qsel = qsel.where(q.c.month_index <= upto_month)
        quar = _frame(conn, qsel, ["service_id", "indicator", "period", "month_index", "reason_code", "reason", "raw"])
        services = load_services(conn)
    import json

    raws = [json.loads(r) if isinstance(r, str) else r for r in quar["raw"]]
    quar["raw_value"] = [r.get("value") if isinstance(r, dict) else None for r in raws]
    quar = quar.drop(columns="raw")
    for c in ("service_id", "indicator", "period", "period_kind"):
        if c in obs:
            obs[c] = obs[c].astype(object)
    return Panel(obs, services, quar)
