"""Late corrections: a period detection has already processed receives new data.

A service corrects an old month (a new version of a value), sends a report late, or a row
of an old month is rejected at import. The findings of the processed months from the
earliest such period on are computed again, and the alerts they touch are brought to what a
timely run on the corrected data would have left, without rewriting the audit:

* the alert lifecycle (:func:`alerts.lifecycle.apply_findings`) is replayed on every month
  up to the last processed one, in a scratch in-memory database, from the corrected findings;
* only keys (service, indicator, category) whose findings in the recomputed months changed
  are touched, and only while detection owns them (no alert, open, or resolved): an alert a
  person acknowledged, dismissed or followed up stays theirs and gets a comment;
* an episode opened in the recomputed periods that the corrected data no longer support is
  withdrawn: classified « erreur de données » by detection (event ``withdrawn``, with why), so
  that the lifecycle treats its key as free; the latest remaining episode takes the replayed
  state when it is the same episode (same opening period: period, severity, score, streak;
  resolved or reopened with an event); the replay's latest episode is opened, with its own
  opening period, when the store does not have it. (Earlier replayed episodes, opened and
  resolved within the recomputed periods, are not created: only the latest one steers what
  follows.)

The whole reconciliation is written in the detection run's transaction, so a run killed at
any point leaves nothing half done.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from alerts.lifecycle import apply_findings, combine_findings, system_event
from detectors.base import opening_findings
from alerts.silences import active_silences
from monitor.store.models import Alert, Base, DetectionRun, Finding, Observation, Quarantine, \
    Submission, utcnow
from monitor.vocabulary.periods import kind_of, month_label, period_code
from monitor.vocabulary.statuses import AlertStatus

# the alert fields the lifecycle computes (everything else is a person's)
AUTOMATED = ("status", "severity", "score", "detectors", "explanation", "opened_period", "opened_month_index",
             "last_period", "last_month_index", "normal_streak")
FINDING_KEY = ["service_id", "indicator", "category", "month_index", "detector", "severity"]
WITHDRAWN_REASON = "erreur_donnees"      # a withdrawn alert reads « classée : erreur de données »


def late_month(conn: sa.Connection, last_processed: int | None) -> int | None:
    """The earliest processed period that received data after the last successful run began
    (a current observation, or a row rejected at import), or None."""
    if last_processed is None:
        return None
    started = conn.execute(sa.select(sa.func.max(DetectionRun.started_at))
                           .where(DetectionRun.status == "ok")).scalar()
    if started is None:
        return None
    o, q, sub = Observation.__table__, Quarantine.__table__, Submission.__table__
    months = []
    for t, extra in ((o, o.c.is_current.is_(True)), (q, q.c.month_index.is_not(None))):
        months.append(conn.execute(
            sa.select(sa.func.min(t.c.month_index)).join(sub, sub.c.id == t.c.submission_id)
            .where(sub.c.received_at > started, t.c.month_index <= last_processed, extra)).scalar())
    found = [int(m) for m in months if m is not None]
    return min(found) if found else None


@dataclass
class CorrectionStats:
    first_month: int | None = None
    withdrawn: int = 0
    opened: int = 0
    updated: int = 0
    left_to_people: int = 0

    def summary_fr(self) -> str:
        if self.first_month is None:
            return ""
        return (f"données corrigées depuis {month_label(self.first_month)} : périodes réanalysées ; "
                f"alertes retirées {self.withdrawn}, ouvertes {self.opened}, mises à jour {self.updated}"
                + (f", laissées à leur responsable {self.left_to_people}" if self.left_to_people else ""))


def replay_alerts(findings: pd.DataFrame, months: np.ndarray, reported: dict, resolve_after: int
                  ) -> dict[tuple[str, str, str], list[dict]]:
    """The alerts of each key (oldest first, automated fields) that the lifecycle leaves after
    ``months`` of these findings from no alert at all, i.e. a backfill's alerts, computed in a
    scratch in-memory database."""
    engine = sa.create_engine("sqlite://")
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            apply_findings(session, combine_findings(findings), months, resolve_after=resolve_after,
                           reported=reported)
            session.flush()
            out: dict[tuple[str, str, str], list[dict]] = {}
            for a in session.scalars(sa.select(Alert).order_by(Alert.id)):
                out.setdefault((a.service_id, a.indicator, a.category), []).append(
                    {f: getattr(a, f) for f in AUTOMATED})
            return out
    finally:
        engine.dispose()


def changed_keys(conn: sa.Connection, recomputed: pd.DataFrame, first: int, last: int) -> set[tuple[str, str, str]]:
    """Keys whose opening findings in ``first``..``last`` differ between the store and ``recomputed``."""
    f = Finding.__table__
    stored = pd.DataFrame(conn.execute(sa.select(*[f.c[c] for c in FINDING_KEY])
                                       .where(f.c.month_index >= first, f.c.month_index <= last)).all(),
                          columns=FINDING_KEY)
    new = opening_findings(recomputed[(recomputed["month_index"] >= first) & (recomputed["month_index"] <= last)])
    a = set(map(tuple, stored.astype({"month_index": int}).itertuples(index=False, name=None)))
    b = set(map(tuple, new[FINDING_KEY].astype({"month_index": int}).itertuples(index=False, name=None)))
    return {row[:3] for row in a ^ b}


def _stored(session: Session, keys: set) -> dict[tuple[str, str, str], list[Alert]]:
    out: dict[tuple[str, str, str], list[Alert]] = {}
    for a in session.scalars(sa.select(Alert).order_by(Alert.id)):
        key = (a.service_id, a.indicator, a.category)
        if key in keys:
            out.setdefault(key, []).append(a)
    return out


def _withdrawn(a: Alert) -> bool:
    return a.status == AlertStatus.DISMISSED and a.dismiss_reason == WITHDRAWN_REASON


def reconcile(session: Session, replayed: dict, keys: set, first: int, resolve_after: int,
              stats: CorrectionStats) -> None:
    """Bring the alerts of ``keys`` to their replayed state (module docstring): an episode
    opened from ``first`` on that the replay does not have is withdrawn (classified « erreur de
    données » by detection, event ``withdrawn``; the lifecycle then treats the key as free);
    the latest remaining one takes the replay's latest state when it is the same episode;
    the replay's latest episode is opened when missing."""
    stored = _stored(session, keys)
    silenced = set(active_silences(session))
    because = f"données de {month_label(first)} et après corrigées"
    events: list[tuple[Alert, dict]] = []
    for key in sorted(keys):
        mine = [a for a in stored.get(key, []) if not _withdrawn(a)]
        theirs = replayed.get(key, [])
        opened = {t["opened_month_index"] for t in theirs}
        target = theirs[-1] if theirs else None
        for a in mine:
            if a.opened_month_index < first or a.opened_month_index in opened:
                continue
            if key in silenced or a.status not in (AlertStatus.OPEN, AlertStatus.RESOLVED):
                events.append((a, dict(kind="comment", period=a.last_period,
                                       comment=f"{because} : le constat qui a ouvert cette alerte ne tient plus ; "
                                               f"elle reste à son responsable")))
                stats.left_to_people += 1
                continue
            events.append((a, dict(kind="withdrawn", period=period_code(first, kind_of(a.last_period)),
                                   from_status=a.status, to_status=AlertStatus.DISMISSED,
                                   comment=f"constat retiré : {because}")))
            a.status, a.dismiss_reason, a.snoozed_until = AlertStatus.DISMISSED, WITHDRAWN_REASON, None
            a.normal_streak, a.updated_at = max(a.normal_streak, resolve_after), utcnow()
            stats.withdrawn += 1
        live = [a for a in mine if not _withdrawn(a)]
        latest = live[-1] if live else None
        if target is not None and latest is not None and latest.opened_month_index == target["opened_month_index"]:
            if key in silenced or latest.status not in (AlertStatus.OPEN, AlertStatus.RESOLVED):
                stats.left_to_people += int(latest.status != target["status"])
            else:
                before = latest.status
                changed = any(getattr(latest, f) != target[f] for f in AUTOMATED)
                for f in AUTOMATED:
                    setattr(latest, f, target[f])
                if before != latest.status:
                    kind = "resolved" if latest.status == AlertStatus.RESOLVED else "reopened"
                    events.append((latest, dict(kind=kind, period=latest.last_period, from_status=before,
                                                to_status=latest.status, comment=because)))
                if changed:
                    latest.updated_at = utcnow()
                    stats.updated += 1
        elif target is not None and target["opened_month_index"] not in {a.opened_month_index for a in mine}:
            new = Alert(service_id=key[0], indicator=key[1], category=key[2], **target)
            session.add(new)
            events.append((new, dict(kind="opened", period=target["opened_period"], to_status=AlertStatus.OPEN,
                                     severity=target["severity"], comment=f"{target['explanation']} ({because})")))
            if target["status"] == AlertStatus.RESOLVED:
                events.append((new, dict(kind="resolved", period=target["last_period"],
                                         from_status=AlertStatus.OPEN, to_status=AlertStatus.RESOLVED,
                                         comment=because)))
            stats.opened += 1
    session.flush()
    session.add_all([system_event(a, **kw) for a, kw in events])
