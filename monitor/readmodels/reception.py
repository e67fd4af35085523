"""The data steward's tables within the user's regions: what each service sent, what was
rejected and why, and the pulls and job runs (monitor.readmodels.steward computes them)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from monitor.store.models import Observation, Submission

if TYPE_CHECKING:
    pass
from monitor.readmodels.common import acting_user, check_service


def service_reception(engine: sa.Engine, actor, service_id: str) -> dict[str, pd.DataFrame]:
    """What one service sent: submissions with the rows accepted for it and the periods they
    covered, its rejected rows with their reasons, and its missing monthly reports."""
    from monitor.readmodels import steward

    _, region = check_service(engine, actor, service_id)
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

    who = acting_user(engine, actor)
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
