"""The data steward's view: what was received, from where, what was rejected and why, which
services have not reported, and how each source is doing.

Read-only service functions returning DataFrames (the dashboard shows them; no SQL outside
``monitor/``). ``regions`` scopes the answer to the services of those INSEE region codes
(``None`` = every region, for the national level, admins and stewards); rows that cannot be
tied to a registered service (an unknown SIRET in a rejected row) are only visible unscoped.
"""
from __future__ import annotations

import json
from typing import Iterable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from monitor.store.models import Observation, Quarantine, Service, SourcePull, Submission
from monitor.vocabulary.periods import month_label, parse_period

RECEPTION_COLUMNS = ["service_id", "service_name", "region_code", "last_period", "last_source", "last_file",
                     "last_received_at", "expected_months", "missing_count", "missing_periods", "status"]
QUARANTINE_COLUMNS = ["id", "created_at", "submission_id", "source", "file_name", "row_number", "service_id",
                      "service_name", "region_code", "indicator", "period", "reason_code", "reason", "raw"]
SOURCE_COLUMNS = ["source", "kind", "configured", "schedule", "pulls", "last_pull_at", "last_status",
                  "last_success_at", "last_success_files", "last_success_accepted", "last_error_at", "last_error"]
SUBMISSION_COLUMNS = ["id", "received_at", "source", "file_name", "status", "rows_total", "accepted",
                      "rejected", "unchanged", "error"]
STATUS_FR = {"ok": "à jour", "late": "incomplet", "never": "jamais reçu"}


def _regions(regions: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if regions is None else (tuple(regions) or ("--",))


def _frame(rows, columns) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def _agrement_end_index(values: pd.Series) -> np.ndarray:
    end = pd.to_datetime(values, errors="coerce")
    return (end.dt.year * 12 + end.dt.month - 1).fillna(10 ** 9).astype(int).to_numpy()


def services_reception(engine: sa.Engine, regions: Iterable[str] | None = None, months: int = 12,
                       as_of: str | None = None) -> pd.DataFrame:
    """Per service: the last period received, from which source and file, when; and the
    monthly periods missing among the last ``months`` months up to ``as_of`` (default: the
    latest month any service reported). A month is expected from the service's first
    monthly report on, while its agrément runs. Sorted with the most missing first."""
    scope = _regions(regions)
    o, s = Observation.__table__, Service.__table__
    svc_q = sa.select(s.c.service_id, s.c.name, s.c.region_code, s.c.agrement_end)
    if scope is not None:
        svc_q = svc_q.where(s.c.region_code.in_(scope))
    with engine.connect() as conn:
        services = _frame(conn.execute(svc_q.order_by(s.c.service_id)).all(),
                          ["service_id", "service_name", "region_code", "agrement_end"])
        if services.empty:
            return pd.DataFrame(columns=RECEPTION_COLUMNS)
        monthly = sa.and_(o.c.is_current.is_(True), o.c.period_kind == "M")
        ref = parse_period(as_of)[2] if as_of else conn.scalar(sa.select(sa.func.max(o.c.month_index)).where(monthly))
        in_scope = o.c.service_id.in_(sa.select(s.c.service_id).where(s.c.region_code.in_(scope))) \
            if scope is not None else sa.true()
        if as_of:                           # as of a period: later data are not seen
            in_scope = sa.and_(in_scope, o.c.month_index <= int(ref))
        first = dict(conn.execute(sa.select(o.c.service_id, sa.func.min(o.c.month_index))
                                  .where(monthly, in_scope).group_by(o.c.service_id)).all())
        present = set()
        if ref is not None:
            lo = int(ref) - months + 1
            present = set(map(tuple, conn.execute(
                sa.select(o.c.service_id, o.c.month_index).distinct()
                .where(monthly, in_scope, o.c.month_index.between(lo, int(ref)))).all()))
        last = (sa.select(o.c.service_id, sa.func.max(o.c.month_index).label("m"))
                .where(o.c.is_current.is_(True), in_scope).group_by(o.c.service_id).subquery())
        last_rows = _frame(conn.execute(
            sa.select(o.c.service_id, o.c.period, o.c.period_kind, sa.func.max(o.c.submission_id))
            .join(last, sa.and_(last.c.service_id == o.c.service_id, last.c.m == o.c.month_index))
            .where(o.c.is_current.is_(True))
            .group_by(o.c.service_id, o.c.period, o.c.period_kind)).all(),
            ["service_id", "period", "period_kind", "submission_id"])
        sub_ids = sorted({int(x) for x in last_rows["submission_id"].dropna()})
        subs = _frame(conn.execute(sa.select(Submission.id, Submission.source, Submission.file_name,
                                             Submission.received_at).where(Submission.id.in_(sub_ids))).all()
                      if sub_ids else [], ["submission_id", "last_source", "last_file", "last_received_at"])
    # last period: prefer the monthly one at the last month, then the newest submission
    if len(last_rows):
        last_rows["is_month"] = last_rows["period_kind"].eq("M")
        last_rows = (last_rows.sort_values(["service_id", "is_month", "submission_id"])
                     .groupby("service_id").tail(1).merge(subs, on="submission_id", how="left"))
    out = services.merge(last_rows.rename(columns={"period": "last_period"}) if len(last_rows) else
                         pd.DataFrame(columns=["service_id", "last_period", "last_source", "last_file",
                                               "last_received_at"]),
                         on="service_id", how="left")
    end_idx = _agrement_end_index(out["agrement_end"])
    expected_col, missing_col, count_col, status_col = [], [], [], []
    for sid, end in zip(out["service_id"], end_idx):
        if ref is None:
            expected, missing = 0, []
        else:
            start = max(int(ref) - months + 1, first.get(sid, int(ref) - months + 1))
            window = range(start, min(int(ref), int(end)) + 1)
            expected = len(window)
            missing = [month_label(m) for m in window if (sid, m) not in present]
        expected_col.append(expected)
        missing_col.append(missing)
        count_col.append(len(missing))
        status_col.append(STATUS_FR["never"] if sid not in first and (ref is None or expected)
                          else STATUS_FR["late"] if missing else STATUS_FR["ok"])
    out["expected_months"], out["missing_periods"] = expected_col, missing_col
    out["missing_count"], out["status"] = count_col, status_col
    out = out.sort_values(["missing_count", "region_code", "service_id"], ascending=[False, True, True])
    return out[RECEPTION_COLUMNS].reset_index(drop=True)


def _raw_text(raw) -> str:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return raw
    if isinstance(raw, dict) and list(raw) == ["cells"]:
        return " ; ".join(str(c) for c in raw["cells"])
    if isinstance(raw, dict):
        return " ; ".join(f"{k}={v}" for k, v in raw.items())
    return str(raw)


def quarantine_rows(engine: sa.Engine, regions: Iterable[str] | None = None, limit: int = 500,
                    reason_code: str | None = None, submission_id: int | None = None,
                    source: str | None = None) -> pd.DataFrame:
    """Rejected rows, newest first, with their reason (French), file, source and raw cells."""
    scope = _regions(regions)
    q_ = Quarantine.__table__
    q = (sa.select(q_.c.id, q_.c.created_at, q_.c.submission_id, Submission.source, Submission.file_name,
                   q_.c.row_number, q_.c.service_id, Service.name, Service.region_code, q_.c.indicator,
                   q_.c.period, q_.c.reason_code, q_.c.reason, q_.c.raw)
         .join(Submission, Submission.id == q_.c.submission_id)
         .outerjoin(Service, Service.service_id == q_.c.service_id)
         .order_by(q_.c.id.desc()).limit(limit))
    if scope is not None:
        q = q.where(Service.region_code.in_(scope))
    if reason_code:
        q = q.where(q_.c.reason_code == reason_code)
    if submission_id is not None:
        q = q.where(q_.c.submission_id == submission_id)
    if source:
        q = q.where(Submission.source == source)
    with engine.connect() as conn:
        out = _frame(conn.execute(q).all(), QUARANTINE_COLUMNS)
    out["raw"] = [_raw_text(r) for r in out["raw"]]
    return out


def quarantine_summary(engine: sa.Engine, regions: Iterable[str] | None = None) -> pd.DataFrame:
    """Rejected rows counted by reason, most frequent first."""
    scope = _regions(regions)
    q_ = Quarantine.__table__
    q = (sa.select(q_.c.reason_code, q_.c.reason, sa.func.count().label("rows"),
                   sa.func.count(sa.distinct(q_.c.submission_id)).label("files"))
         .group_by(q_.c.reason_code, q_.c.reason).order_by(sa.func.count().desc()))
    if scope is not None:
        q = q.join(Service, Service.service_id == q_.c.service_id).where(Service.region_code.in_(scope))
    with engine.connect() as conn:
        return _frame(conn.execute(q).all(), ["reason_code", "reason", "rows", "files"])


def sources_status(engine: sa.Engine, settings=None) -> pd.DataFrame:
    """Per source: its last pull, last successful pull (``ok`` or ``not_modified``) and last
    error. With ``settings`` (monitor.settings.Settings), configured sources never pulled yet
    are listed too, with their schedule."""
    p = SourcePull.__table__
    with engine.connect() as conn:
        agg = _frame(conn.execute(
            sa.select(p.c.source, sa.func.count(), sa.func.max(p.c.id),
                      sa.func.max(sa.case((p.c.status.in_(("ok", "not_modified")), p.c.id))),
                      sa.func.max(sa.case((p.c.status == "error", p.c.id))))
            .group_by(p.c.source)).all(), ["source", "pulls", "last_id", "ok_id", "err_id"])
        ids = sorted({int(x) for c in ("last_id", "ok_id", "err_id") for x in agg[c].dropna()})
        rows = {r.id: r for r in conn.execute(sa.select(p).where(p.c.id.in_(ids))).all()} if ids else {}
    records = []
    for r in agg.itertuples():
        last = rows.get(r.last_id)
        ok = rows.get(int(r.ok_id)) if pd.notna(r.ok_id) else None
        err = rows.get(int(r.err_id)) if pd.notna(r.err_id) else None
        records.append({"source": r.source, "kind": last.kind if last else None, "configured": None,
                        "schedule": None, "pulls": int(r.pulls),
                        "last_pull_at": last.started_at if last else None,
                        "last_status": last.status if last else None,
                        "last_success_at": ok.started_at if ok else None,
                        "last_success_files": ok.files if ok else None,
                        "last_success_accepted": ok.accepted if ok else None,
                        "last_error_at": err.started_at if err else None,
                        "last_error": err.error if err else None})
    out = pd.DataFrame(records, columns=SOURCE_COLUMNS)
    if settings is not None:
        configured = {s.name: s for s in settings.sources}
        out["configured"] = out["source"].isin(list(configured))
        out["schedule"] = [configured[n].schedule.describe_fr() if n in configured else None for n in out["source"]]
        never = [{"source": s.name, "kind": s.kind, "configured": True, "schedule": s.schedule.describe_fr(),
                  "pulls": 0} for s in settings.sources if s.name not in set(out["source"])]
        if never:
            out = pd.concat([out, pd.DataFrame(never, columns=SOURCE_COLUMNS)], ignore_index=True)
    return out.sort_values("source").reset_index(drop=True)


def submissions(engine: sa.Engine, limit: int = 100, regions: Iterable[str] | None = None,
                source: str | None = None) -> pd.DataFrame:
    """Received files, newest first. Scoped: the files that brought observations or rejected
    rows for services of ``regions``."""
    scope = _regions(regions)
    q = sa.select(*[getattr(Submission, c) for c in SUBMISSION_COLUMNS]).order_by(Submission.id.desc()).limit(limit)
    if source:
        q = q.where(Submission.source == source)
    if scope is not None:
        in_regions = sa.select(Service.service_id).where(Service.region_code.in_(scope))
        q = q.where(sa.or_(
            Submission.id.in_(sa.select(Observation.submission_id).where(Observation.service_id.in_(in_regions))),
            Submission.id.in_(sa.select(Quarantine.submission_id).where(Quarantine.service_id.in_(in_regions)))))
    with engine.connect() as conn:
        return _frame(conn.execute(q).all(), SUBMISSION_COLUMNS)
