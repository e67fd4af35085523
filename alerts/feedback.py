"""Triage feeds back: what agents decided about the alerts, per detector and indicator, and how
fast alerts are taken in hand, per region and severity (DESIGN.md, "Alerts, follow-ups, audit").

* **Precision from dismissals.** Among the alerts people decided on (dismissed with a reason,
  or turned into a follow-up), the share that were not « faux positif ». « Erreur de données »
  counts against a statistical detector (it flagged bad data, not a bad service) but for a
  data-quality detector it is the detector being right. « Explication fournie par le service »
  and « déjà connu » are real anomalies, already accounted for.
* **Response delays.** Days from an alert's opening to its « prise en charge » and to its first
  follow-up (medians), and the alerts nobody has touched for ``untouched_days`` or more.

Both are read within the user's regions (monitor.accounts.access), like every other read.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import sqlalchemy as sa

from alerts.lifecycle import SYSTEM_ACTOR
from monitor.accounts.access import readable_regions, region_clause, resolve_actor
from monitor.config import env
from monitor.store import db
from monitor.store.models import Alert, AlertEvent, Service
from monitor.vocabulary import dates
from monitor.vocabulary.statuses import QUEUE, AlertStatus

FEEDBACK_COLUMNS = ["detector", "indicator", "alerts", "decided", "faux_positif", "erreur_donnees",
                    "explication_service", "deja_connu", "suites", "precision"]
DELAY_COLUMNS = ["region_code", "severity", "alerts", "acknowledged", "median_days_to_ack",
                 "followed_up", "median_days_to_follow_up", "untouched"]


def untouched_clause(alert, cutoff: datetime):
    """SQL condition: an alert still to handle, opened before ``cutoff``, on which nobody (no
    person: detection does not count) has acted in any way since."""
    acted = sa.exists().where(AlertEvent.alert_id == alert.c.id, AlertEvent.actor != SYSTEM_ACTOR)
    return sa.and_(alert.c.status.in_(list(QUEUE)), alert.c.created_at <= cutoff, ~acted)


def untouched_alerts(session, who, days: int, now: datetime, limit: int = 20) -> list:
    """The oldest untouched alerts of the user's regions: (id, service name, region, indicator,
    severity, created_at), oldest first, at most ``limit``."""
    a = Alert.__table__
    q = (sa.select(a.c.id, Service.name, Service.region_code, a.c.indicator, a.c.severity, a.c.created_at)
         .join(Service, Service.service_id == a.c.service_id)
         .where(untouched_clause(a, now - timedelta(days=days)),
                region_clause(Service.region_code, readable_regions(who, None)))
         .order_by(a.c.created_at, a.c.id).limit(limit))
    return session.execute(q).all()


@dataclass
class Feedback:
    precision: pd.DataFrame        # FEEDBACK_COLUMNS, one row per detector and indicator
    delays: pd.DataFrame           # DELAY_COLUMNS, one row per region and severity
    untouched: pd.DataFrame        # alerts open and untouched for too long: id, service, region, days
    untouched_days: int


def _alerts(session, who, region: str | None, untouched_since: datetime) -> pd.DataFrame:
    untouched = untouched_clause(Alert.__table__, untouched_since)
    q = (sa.select(Alert.id, Alert.service_id, Alert.indicator, Alert.category, Alert.status, Alert.severity,
                   Alert.detectors, Alert.dismiss_reason, Alert.created_at, Service.region_code, Service.name,
                   untouched)
         .join(Service, Service.service_id == Alert.service_id)
         .where(region_clause(Service.region_code, readable_regions(who, region))))
    rows = session.execute(q).all()
    out = pd.DataFrame(rows, columns=["id", "service_id", "indicator", "category", "status", "severity", "detectors",
                                      "dismiss_reason", "created_at", "region_code", "service_name", "untouched"])
    out["untouched"] = out["untouched"].fillna(False).astype(bool)
    return out


def _first_events(session, ids: list[int]) -> pd.DataFrame:
    """Per alert: its first prise en charge and its first follow-up by a person."""
    if not ids:
        return pd.DataFrame(columns=["alert_id", "ack", "follow_up"])
    ev = pd.DataFrame(session.execute(
        sa.select(AlertEvent.alert_id, AlertEvent.kind, AlertEvent.at, AlertEvent.actor)
        .where(AlertEvent.alert_id.in_(ids))).all(), columns=["alert_id", "kind", "at", "actor"])
    ev["at"] = [dates.as_utc(t) for t in ev["at"]]
    human = ev[ev["actor"] != SYSTEM_ACTOR]
    out = pd.DataFrame({"alert_id": ids}).set_index("alert_id")
    out["ack"] = human[human["kind"] == "acknowledged"].groupby("alert_id")["at"].min()
    out["follow_up"] = human[human["kind"].isin(["follow_up", "follow_up_linked"])].groupby("alert_id")["at"].min()
    return out.reset_index()


def _precision(a: pd.DataFrame) -> pd.DataFrame:
    if a.empty:
        return pd.DataFrame(columns=FEEDBACK_COLUMNS)
    d = a.assign(detector=a["detectors"].str.split(";")).explode("detector")
    d = d[d["detector"].fillna("") != ""]
    reason = d["dismiss_reason"].where(d["status"] == AlertStatus.DISMISSED)
    d = d.assign(
        faux_positif=reason.eq("faux_positif"), erreur_donnees=reason.eq("erreur_donnees"),
        explication_service=reason.eq("explication_service"), deja_connu=reason.eq("deja_connu"),
        suites=d["status"].eq(AlertStatus.FOLLOW_UP))
    d["decided"] = reason.notna() | d["suites"]
    # a statistical detector that flagged bad data was wrong about the service
    d["wrong"] = d["faux_positif"] | (d["erreur_donnees"] & (d["category"] != "data_quality"))
    g = d.groupby(["detector", "indicator"])
    out = g.agg(alerts=("id", "size"), decided=("decided", "sum"), faux_positif=("faux_positif", "sum"),
                erreur_donnees=("erreur_donnees", "sum"), explication_service=("explication_service", "sum"),
                deja_connu=("deja_connu", "sum"), suites=("suites", "sum"), wrong=("wrong", "sum")).reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["precision"] = np.where(out["decided"] > 0, 1 - out["wrong"] / out["decided"], np.nan)
    return out[FEEDBACK_COLUMNS].sort_values(["precision", "decided"], ascending=[True, False], na_position="last",
                                             kind="mergesort").reset_index(drop=True)


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (pd.to_datetime(later, utc=True) - pd.to_datetime(earlier, utc=True)).dt.total_seconds() / 86400.0


def triage_feedback(engine: sa.Engine, actor, *, region: str | None = None,
                    untouched_days: int | None = None, now: datetime | None = None) -> Feedback:
    """Precision by detector and indicator from the triage decisions, response delays by
    region and severity, and the alerts left untouched for ``untouched_days`` days or more
    (``$SPSTI_MONITOR_UNTOUCHED_DAYS`` by default)."""
    untouched_days = env.untouched_days() if untouched_days is None else untouched_days
    if untouched_days < 1:
        raise ValueError("le délai au-delà duquel une alerte est signalée doit être d'au moins un jour")
    now = now or datetime.now(timezone.utc)
    with db.session_scope(engine) as s:
        who = resolve_actor(s, actor)
        a = _alerts(s, who, region, now - timedelta(days=untouched_days))
        first = _first_events(s, [int(i) for i in a["id"]])
    a = a.merge(first, left_on="id", right_on="alert_id", how="left")
    a["created_at"] = [dates.as_utc(t) for t in a["created_at"]]
    a["to_ack"] = _days(a["ack"], a["created_at"])
    a["to_follow_up"] = _days(a["follow_up"], a["created_at"])
    a["age"] = _days(pd.Series([now] * len(a), index=a.index), a["created_at"])
    if a.empty:
        delays = pd.DataFrame(columns=DELAY_COLUMNS)
    else:
        delays = a.groupby(["region_code", "severity"]).agg(
            alerts=("id", "size"), acknowledged=("to_ack", "count"), median_days_to_ack=("to_ack", "median"),
            followed_up=("to_follow_up", "count"), median_days_to_follow_up=("to_follow_up", "median"),
            untouched=("untouched", "sum")).reset_index()[DELAY_COLUMNS]
    late = a[a["untouched"]][["id", "service_id", "service_name", "region_code", "indicator", "severity", "age"]]
    late = late.rename(columns={"age": "days"}).sort_values("days", ascending=False, kind="mergesort")
    return Feedback(_precision(a), delays, late.reset_index(drop=True), untouched_days)
