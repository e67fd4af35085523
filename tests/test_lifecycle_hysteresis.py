"""Alerts that do not flap: hysteresis, normal periods counted at the indicator's own frequency,
and what a person sees when an anomaly came back anyway."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from world import finding, make_world  # noqa: E402

from alerts import triage  # noqa: E402
from alerts.lifecycle import apply_findings, combine_findings  # noqa: E402
from monitor.store import db  # noqa: E402
from monitor.store.models import Alert, AlertEvent  # noqa: E402
from monitor.vocabulary.periods import month_index  # noqa: E402

MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]


def _run(engine, rows, periods, reported=None):
    df = pd.DataFrame(rows)
    with db.session_scope(engine) as s:
        return apply_findings(s, combine_findings(df), [month_index(p) for p in periods], resolve_after=3,
                              reported=reported)


def _sustain(sid, indicator, period, category="peer_outlier"):
    return dict(finding(sid, indicator, period, category=category), severity="low", score=0.0, detector="peer",
                sustain=True, explanation=None)


def _open(sid, indicator, period, category="peer_outlier"):
    return dict(finding(sid, indicator, period, category=category), detector="peer", sustain=False)


def _alert(engine, sid, indicator):
    with db.session_scope(engine) as s:
        rows = s.scalars(sa.select(Alert).where(Alert.service_id == sid, Alert.indicator == indicator)).all()
        for r in rows:
            s.expunge(r)
        return [(r,) for r in rows]


def test_a_sustaining_finding_keeps_an_alert_open_and_opens_nothing(sqlite_engine, tmp_path):
    engine = sqlite_engine
    w = make_world(engine, tmp_path, with_alerts=False)
    a, b = w.svc(0), w.svc(2)
    rows = [_open(a, "amt_per_1000", "2025-01")]
    rows += [_sustain(a, "amt_per_1000", p) for p in MONTHS[1:5]]        # hovering under the alert limit
    rows += [_sustain(b, "amt_per_1000", p) for p in MONTHS[:6]]         # never beyond it: nothing opens
    stats = _run(engine, rows, MONTHS[:8])
    assert stats.opened == 1 and not _alert(engine, b, "amt_per_1000")
    (alert,) = _alert(engine, a, "amt_per_1000")
    alert = alert[0]
    assert alert.status == "resolved" and alert.last_period == "2025-05"
    with engine.connect() as c:
        resolved_at = c.execute(sa.select(AlertEvent.period).where(AlertEvent.alert_id == alert.id,
                                                                   AlertEvent.kind == "resolved")).scalar()
    assert resolved_at == "2025-08"       # three normal months after the last sustained one, not before


def test_a_yearly_indicator_counts_years_not_months(sqlite_engine, tmp_path):
    engine = sqlite_engine
    w = make_world(engine, tmp_path, with_alerts=False)
    sid = w.svc(0)
    months = [f"{y}-{m:02d}" for y in (2023, 2024) for m in range(1, 13)]
    # the service reports monthly indicators every month, and its fee once a year
    reported = {month_index(p): {sid, (sid, "amt_per_1000")} | ({(sid, "cotisation_vs_cmn_ratio")}
                                                                  if p.endswith("-12") else set())
                for p in months}
    fee = dict(_open(sid, "cotisation_vs_cmn_ratio", "2023-12", category="rule"), detector="rules_thresholds")
    _run(engine, [fee], months, reported=reported)
    (row,) = _alert(engine, sid, "cotisation_vs_cmn_ratio")
    assert row[0].status == "open" and row[0].normal_streak == 1     # one normal year, not twelve months


def test_reappearances_are_shown_and_told(sqlite_engine, tmp_path):
    from alerts.notify.digest import _change_fr

    engine = sqlite_engine
    w = make_world(engine, tmp_path, with_alerts=False)
    sid = w.svc(0)
    periods = [f"2024-{m:02d}" for m in range(1, 13)] + MONTHS
    rows = [_open(sid, "amt_per_1000", p) for p in ("2024-01", "2024-06", "2024-11", "2025-04")]
    _run(engine, rows, periods)
    (row,) = _alert(engine, sid, "amt_per_1000")
    view = triage.get_alert(engine, w.users["agent84"], row[0].id)
    assert view.reappearances == 3
    with db.session_scope(engine) as s:
        events = s.scalars(sa.select(AlertEvent).where(AlertEvent.kind == "reopened").order_by(AlertEvent.id)).all()
        texts = [_change_fr(s, e, {}) for e in events]
    assert texts[0].startswith("rouverte : l'anomalie est revenue") and "réapparition" not in texts[0]
    assert texts[-1].endswith("(3e réapparition)")
