"""From findings to alerts, month by month.

One alert per (service, indicator, category) at a time. For each processed month, in order:

* a finding on a key with no alert opens one (event ``opened``);
* a finding on an active alert (open, acknowledged, follow_up) updates its last period,
  score and severity (event ``severity`` when the severity changes);
* a finding on a resolved alert reopens it (event ``reopened``);
* a dismissed alert is a human decision: it absorbs findings of the same episode; once the
  data have been normal for ``resolve_after`` months, a new finding opens a new alert;
* an open or acknowledged alert with no finding for ``resolve_after`` consecutive periods in
  which its service reported that indicator is resolved (event ``resolved``): a period without
  data is not a normal period, and a yearly indicator counts years; an alert under follow-up
  stays with its owner while one of its follow-ups is active, and resolves like the others
  once they are all closed;
* hysteresis: a *sustaining* finding (``sustain`` true: the value is still beyond a lower
  bar than the one that opens an alert, e.g. outside the peers' 99.8 % limits but under the
  alert limit) opens nothing but keeps an active alert from counting a normal period, so an
  anomaly that hovers around its limit is one alert, not one that resolves and reopens;
* ``resolve_after`` comes from ``detect --resolve-after N`` (default 3).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from alerts.silences import active_silences, covers, worse
from monitor.store.models import Alert, AlertEvent, FollowUp, FollowUpAlert, utcnow
from monitor.vocabulary.labels import SEVERITY_RANK
from monitor.vocabulary.periods import kind_of, month_label, period_code
from monitor.vocabulary.statuses import ACTIVE, AUTO_RESOLVABLE, FOLLOW_UP_ACTIVE, AlertStatus

SYSTEM_ACTOR = "détection"
DEFAULT_RESOLVE_AFTER = 3


@dataclass
class LifecycleStats:
    opened: int = 0
    reopened: int = 0
    updated: int = 0
    resolved: int = 0
    silenced: int = 0
    opened_keys: list[tuple[str, str, str, int]] = field(default_factory=list)


def combine_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """One row per (service, indicator, category, month): the strongest finding, all detector names."""
    if findings.empty:
        return findings.assign(detectors=pd.Series(dtype=object))
    f = findings.copy()
    f["sev_rank"] = f["severity"].map(SEVERITY_RANK).fillna(0)
    if "sustain" not in f:
        f["sustain"] = False
    f["sustain"] = f["sustain"].fillna(False).astype(bool)
    f["opens"] = ~f["sustain"]          # a finding that opens beats one that only sustains
    f = f.sort_values(["opens", "sev_rank", "score"], ascending=False, kind="mergesort")
    key = ["service_id", "indicator", "category", "month_index"]
    names = f[f["opens"]].groupby(key)["detector"].agg(lambda s: ";".join(sorted(set(s))))
    top = f.drop_duplicates(key).set_index(key)
    top["detectors"] = names.reindex(top.index).fillna("")
    return top.drop(columns="opens").reset_index().sort_values("month_index", kind="mergesort")


def system_event(alert: Alert, kind: str, period: str, **kw) -> AlertEvent:
    """An event of ``alert`` recorded by detection."""
    return AlertEvent(alert_id=alert.id, actor=SYSTEM_ACTOR, kind=kind, period=period, at=utcnow(), **kw)


def latest_alerts(session: Session) -> dict[tuple[str, str, str], Alert]:
    """The most recent alert of each key."""
    alerts: dict[tuple[str, str, str], Alert] = {}
    for a in session.scalars(sa.select(Alert).order_by(Alert.id)):
        alerts[(a.service_id, a.indicator, a.category)] = a
    return alerts


def _followed(session: Session) -> set[int]:
    """Alerts with at least one active follow-up (à faire, en cours): they stay with their owner."""
    q = (sa.select(FollowUpAlert.alert_id).join(FollowUp, FollowUp.id == FollowUpAlert.follow_up_id)
         .where(FollowUp.status.in_(FOLLOW_UP_ACTIVE)))
    return set(session.scalars(q))


# Alerts about the whole service, not one of its indicators: any data from it counts.
SERVICE_WIDE = ("*", "agrement", "certification")


def _reported(key: tuple[str, str, str], seen: set) -> bool:
    """Whether the period tells anything about this alert: its service sent that indicator
    (or, for an alert about the whole service, anything at all)."""
    service, indicator = key[0], key[1]
    if indicator in SERVICE_WIDE:
        return service in seen
    return (service, indicator) in seen


def _auto_resolvable(a: Alert, followed: set[int]) -> bool:
    """Open and acknowledged alerts resolve by themselves; so do alerts under follow-up once
    all their follow-ups are closed."""
    return a.status in AUTO_RESOLVABLE or (a.status == AlertStatus.FOLLOW_UP and a.id not in followed)


def apply_findings(session: Session, combined: pd.DataFrame, months, resolve_after: int = DEFAULT_RESOLVE_AFTER,
                   reported: dict[int, set[str]] | None = None) -> LifecycleStats:
    """Apply combined findings month by month. ``reported[m]``: services with data in month m
    (None: every month counts).

    Human states are respected: a snooze ends when the alert is resolved or reopened, or when
    its severity rises (event ``unsnoozed``); assignment and comments are left alone.
    """
    if int(resolve_after) < 1:
        raise ValueError("resolve_after doit valoir au moins 1 période")
    stats = LifecycleStats()
    alerts = latest_alerts(session)
    silences = active_silences(session)
    followed = _followed(session)
    today = date.today()
    by_month = {m: g for m, g in combined.groupby("month_index")} if len(combined) else {}
    pending_events: list[tuple[Alert, dict]] = []
    for m in months:
        m = int(m)
        month = month_label(m)
        seen: set[tuple[str, str, str]] = set()
        g = by_month.get(m)
        if g is not None:
            for r in g.itertuples(index=False):
                period = getattr(r, "period", None) or month
                key = (r.service_id, r.indicator, r.category)
                a = alerts.get(key)
                if getattr(r, "sustain", False):
                    # hysteresis: still abnormal, under the bar that opens an alert
                    if a is not None and a.status in ACTIVE:
                        seen.add(key)
                        a.last_period, a.last_month_index, a.normal_streak = period, m, 0
                    continue
                seen.add(key)
                if a is None or (a.status == AlertStatus.DISMISSED and a.normal_streak >= resolve_after):
                    silence = silences.get(key)
                    if silence is not None and covers(silence, m):
                        value = getattr(r, "value", None)
                        if not worse(r.indicator, None if value is None or value != value else float(value),
                                     silence.level):
                            stats.silenced += 1          # known and explained: no new alert
                            continue
                        silence.ended_at, silence.ended_by, silence.ended_reason = utcnow(), SYSTEM_ACTOR, "worsened"
                        del silences[key]
                    a = Alert(service_id=r.service_id, indicator=r.indicator, category=r.category,
                              status=AlertStatus.OPEN, severity=r.severity, score=float(r.score),
                              detectors=r.detectors, explanation=r.explanation,
                              opened_period=period, opened_month_index=m, last_period=period,
                              last_month_index=m, normal_streak=0)
                    session.add(a)
                    alerts[key] = a
                    stats.opened += 1
                    stats.opened_keys.append((*key, m))
                    pending_events.append((a, dict(kind="opened", period=period, to_status=AlertStatus.OPEN,
                                                   severity=r.severity, comment=r.explanation)))
                    continue
                if a.status == AlertStatus.RESOLVED:
                    pending_events.append((a, dict(kind="reopened", period=period, from_status=AlertStatus.RESOLVED,
                                                   to_status=AlertStatus.OPEN, severity=r.severity, comment=r.explanation)))
                    a.status = AlertStatus.OPEN
                    a.snoozed_until = None
                    stats.reopened += 1
                elif a.severity != r.severity and a.status in ACTIVE:
                    pending_events.append((a, dict(kind="severity", period=period, severity=r.severity,
                                                   comment=f"gravité {a.severity} → {r.severity}")))
                    if (SEVERITY_RANK[r.severity] > SEVERITY_RANK.get(a.severity, 0)
                            and a.snoozed_until is not None and a.snoozed_until > today):
                        pending_events.append((a, dict(kind="unsnoozed", period=period,
                                                       comment="gravité en hausse : fin de la mise en sourdine",
                                                       details={"previous": a.snoozed_until.isoformat()})))
                        a.snoozed_until = None
                a.severity = r.severity
                a.score = float(r.score)
                a.detectors = ";".join(sorted(set(a.detectors.split(";")) | set(r.detectors.split(";"))))
                a.explanation = r.explanation
                a.last_period, a.last_month_index = period, m
                a.normal_streak = 0
                a.updated_at = utcnow()
                stats.updated += 1
        for key, a in alerts.items():
            if key in seen or a.status == AlertStatus.RESOLVED or a.last_month_index >= m:
                continue
            if reported is not None and not _reported(key, reported.get(m, ())):
                continue
            a.normal_streak += 1
            if _auto_resolvable(a, followed) and a.normal_streak >= resolve_after:
                period = period_code(m, kind_of(a.last_period))   # the alert's own frequency
                pending_events.append((a, dict(kind="resolved", period=period, from_status=a.status,
                                               to_status=AlertStatus.RESOLVED,
                                               comment=f"données normales depuis {a.normal_streak} périodes")))
                a.status = AlertStatus.RESOLVED
                a.snoozed_until = None
                a.updated_at = utcnow()
                stats.resolved += 1
    session.flush()
    session.add_all([system_event(a, **kw) for a, kw in pending_events])
    return stats
