"""The alert queue as one table of the user's regions, its filters, sorts and counts."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from alerts.feedback import untouched_clause
from monitor.accounts.users import SIGN_IN_EVENTS
from monitor.config import env
from monitor.store.models import Alert, AlertEvent, Region, Service, User, UserEvent
from monitor.vocabulary import dates as timefmt
from monitor.vocabulary.labels import CATEGORY_FR, SEVERITY_FR, SEVERITY_RANK
from monitor.vocabulary.periods import month_label
from monitor.vocabulary.statuses import ALERT_STATUSES, QUEUE, status_label

if TYPE_CHECKING:
    pass
from monitor.readmodels.common import acting_user, indicator_label, region_filter

QUEUE_COLUMNS = ["id", "service_id", "service_name", "region_code", "region_name", "departments",
                 "indicator", "indicator_label", "category", "category_label", "status", "status_label",
                 "severity", "severity_label", "severity_rank", "score", "opened_period", "last_period",
                 "opened_month_index", "last_month_index", "assignee_id", "assignee_name", "snoozed_until",
                 "snoozed", "explanation", "version", "untouched"]

# low-cardinality columns held as categories: labelling maps each category once (not each of
# 10,000 rows), and filters and counts on them are integer operations
_CATEGORICAL = ["region_code", "region_name", "indicator", "category", "status", "severity"]


def queue_version(engine: sa.Engine) -> str:
    """A cheap fingerprint of what :func:`queue_frame` shows, to key its cache on.

    It changes with any alert created or changed (count, newest id, newest change, sum of the
    optimistic-locking versions), any alert event (an action, which also ends « sans action »),
    any register change (a service renamed or moved to another region), any account change
    other than a sign-in (an assignee renamed), and the day (snoozes expire, alerts become
    untouched). Sign-ins do not change it, so that signing in finds the queue already computed.
    Aggregates over the alerts only (a few milliseconds for 10,000 alerts).
    """
    a, ue = Alert.__table__, UserEvent.__table__
    q = (sa.select(sa.func.count(), sa.func.max(a.c.id), sa.func.max(a.c.updated_at), sa.func.sum(a.c.version),
                   sa.select(sa.func.max(AlertEvent.id)).scalar_subquery(),
                   sa.select(sa.func.max(Service.updated_at)).scalar_subquery(),
                   sa.select(sa.func.count()).select_from(Service).scalar_subquery(),
                   sa.select(sa.func.max(ue.c.id)).where(ue.c.kind.not_in(SIGN_IN_EVENTS)).scalar_subquery())
         .select_from(a))
    with engine.connect() as conn:
        row = conn.execute(q).one()
    return "|".join("" if v is None else str(v) for v in row) + f"|{timefmt.today().isoformat()}"


def queue_frame(engine: sa.Engine, actor, today: date | None = None,
                untouched_days: int | None = None) -> pd.DataFrame:
    """Every alert of the user's regions (all statuses) as one table, most severe first;
    ``untouched``: still to handle and nobody has acted on it for ``untouched_days`` days
    (``$SPSTI_MONITOR_UNTOUCHED_DAYS``, 14 by default).

    One SQL query and vectorised labelling (each label computed once per distinct code), so
    10,000 alerts take a few tens of milliseconds; filter it with :func:`filter_queue`.
    """
    today = today or timefmt.today()
    who = acting_user(engine, actor)
    a, s, r, u = Alert.__table__, Service.__table__, Region.__table__, User.__table__
    days = untouched_days if untouched_days is not None else env.untouched_days()
    cutoff = datetime.combine(today - timedelta(days=days), datetime.min.time(), tzinfo=timezone.utc)
    untouched = untouched_clause(a, cutoff).label("untouched")
    q = (sa.select(a.c.id, a.c.service_id, s.c.name, s.c.region_code, r.c.name, s.c.departments,
                   a.c.indicator, a.c.category, a.c.status, a.c.severity, a.c.score, a.c.opened_period,
                   a.c.last_period, a.c.opened_month_index, a.c.last_month_index, a.c.assignee_id,
                   u.c.name, a.c.snoozed_until, a.c.explanation, a.c.version, untouched)
         .select_from(a.join(s, s.c.service_id == a.c.service_id).join(r, r.c.code == s.c.region_code)
                      .outerjoin(u, u.c.id == a.c.assignee_id))
         .where(region_filter(who, s.c.region_code)))
    cols = ["id", "service_id", "service_name", "region_code", "region_name", "departments", "indicator",
            "category", "status", "severity", "score", "opened_period", "last_period", "opened_month_index",
            "last_month_index", "assignee_id", "assignee_name", "snoozed_until", "explanation", "version",
            "untouched"]
    with engine.connect() as conn:
        result = conn.execute(q)
        rows = result.cursor.fetchall() if result.cursor is not None else []
    df = pd.DataFrame.from_records(rows, columns=cols)
    df[_CATEGORICAL] = df[_CATEGORICAL].astype("category")
    df["indicator_label"] = _labels(df["indicator"], indicator_label)
    df["category_label"] = _labels(df["category"], lambda c: CATEGORY_FR.get(c, c))
    df["status_label"] = _labels(df["status"], status_label)
    df["severity_label"] = _labels(df["severity"], lambda c: SEVERITY_FR.get(c, c))
    df["severity_rank"] = df["severity"].map(SEVERITY_RANK).astype(float).fillna(-1).astype(int)
    df["score"] = pd.to_numeric(df["score"], errors="coerce").astype(float)
    snooze = pd.to_datetime(df["snoozed_until"], errors="coerce")
    df["snoozed_until"] = snooze.dt.date
    df["snoozed"] = (snooze > pd.Timestamp(today)).fillna(False).astype(bool)
    df["assignee_id"] = df["assignee_id"].astype("Int64")
    df["departments"] = df["departments"].fillna("").astype(str)
    df["untouched"] = df["untouched"].fillna(False).astype(bool)
    df = df.sort_values(["severity_rank", "score", "id"], ascending=[False, False, True], kind="mergesort")
    return df[QUEUE_COLUMNS].reset_index(drop=True)


def _labels(codes: pd.Series, label) -> pd.Series:
    """``label`` of each code of a categorical column (pandas maps each category once)."""
    return codes.map(label)


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

PAGE_ROWS = 500     # rows the queue page sends to the browser at a time


def queue_page(view: pd.DataFrame, page: int, size: int | None = None) -> tuple[pd.DataFrame, int, int]:
    """The rows of page ``page`` (from 1; clamped to the pages there are) of a filtered and
    sorted queue, ``size`` rows a page (:data:`PAGE_ROWS`): (rows, page, number of pages)."""
    size = size or PAGE_ROWS
    pages = max(1, -(-len(view) // size))
    page = min(max(1, int(page or 1)), pages)
    return view.iloc[(page - 1) * size:page * size], page, pages


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
