"""A monthly run computes only what the new month needs, and gives what a backfill gives.

Two databases hold the same generated panel (with events: drifts, outliers, data faults).
One is detected in a single run; the other up to a few months before the end, then one
month at a time, as the scheduler does. Every finding (detector, score, explanation, evidence)
and every alert change must be the same.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from fixtures.generate import generate, to_frequency, write_panel
from fixtures.harness.datasets import load_dataset
from monitor.pipeline.detection import run_detection
from monitor.store import db
from monitor.store.models import Alert, AlertEvent, Finding
from monitor.vocabulary.periods import month_label

pytestmark = pytest.mark.timeout(600)

FINDING_COLUMNS = ["service_id", "indicator", "period", "month_index", "category", "detector", "score",
                   "severity", "value", "expected", "lower", "upper", "explanation", "evidence"]


def _findings(engine) -> pd.DataFrame:
    f = Finding.__table__
    with engine.connect() as c:
        rows = pd.DataFrame(c.execute(sa.select(*[f.c[k] for k in FINDING_COLUMNS])).all(), columns=FINDING_COLUMNS)
    return rows.sort_values(FINDING_COLUMNS[:6]).reset_index(drop=True)


def _alert_story(engine) -> list[tuple]:
    a, e = Alert.__table__, AlertEvent.__table__
    with engine.connect() as c:
        alerts = sorted(c.execute(sa.select(a.c.service_id, a.c.indicator, a.c.category, a.c.status,
                                            a.c.opened_period, a.c.last_period, a.c.severity)).all())
        events = sorted(c.execute(sa.select(a.c.service_id, a.c.indicator, a.c.category, e.c.kind,
                                            e.c.from_status, e.c.to_status)
                                  .join(a, a.c.id == e.c.alert_id)).all())
    return [tuple(r) for r in alerts] + [tuple(r) for r in events]


@pytest.mark.parametrize("frequency", ["M", "Q"])
def test_month_by_month_runs_give_the_backfill_findings_and_alerts(tmp_path: Path, frequency):
    panel = to_frequency(generate(seed=17, n_services=70, n_months=42, style="noisy"), frequency)
    write_panel(panel, tmp_path)
    engines = []
    for name in ("full", "monthly"):
        e = db.get_engine(f"sqlite:///{tmp_path / f'{name}.db'}")
        load_dataset(e, tmp_path)
        engines.append(e)
    full, monthly = engines
    run_detection(full)
    last = int(_findings(full)["month_index"].max())
    step = 1 if frequency == "M" else 3
    start = last - 3 * step
    run_detection(monthly, as_of=month_label(start))
    for m in range(start + step, last + 1, step):
        summary = run_detection(monthly, as_of=month_label(m))
        assert summary.months == step and summary.last_month == m
    a, b = _findings(full), _findings(monthly)
    assert len(a) > 0 and (a["month_index"] > start).any(), "the last months must hold findings to compare"
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)
    assert _alert_story(full) == _alert_story(monthly)
    assert np.isin(["peer_outlier", "drift"], a["category"].unique()).all()
