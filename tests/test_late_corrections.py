"""A late correction of processed months: detection recomputes them and leaves what a backfill
on the corrected data leaves, without rewriting the audit.

Database A is detected, then receives a file that corrects old months: one service's median
delay becomes far beyond the legal 3 months for three months (an anomaly the first data did
not have), and a breach another service had is corrected away. Database B receives the same
files before its only detection (a backfill). Findings must be identical; every alert of B
must be in A with the same state; A's only extra alerts are the ones the correction withdrew,
each with a « withdrawn » event saying why.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from fixtures.generate import generate, write_panel
from fixtures.harness.datasets import load_dataset
from monitor.ingest.indicators import ingest_file
from monitor.pipeline.detection import run_detection
from monitor.store import db
from monitor.store.models import Alert, AlertEvent, Finding
from monitor.vocabulary.periods import month_label

pytestmark = pytest.mark.timeout(900)

FINDING_COLUMNS = ["service_id", "indicator", "period", "month_index", "category", "detector", "score",
                   "severity", "value", "expected", "explanation"]
ALERT_COLUMNS = ["service_id", "indicator", "category", "status", "opened_period", "last_period", "severity"]
DELAY = "vip_init_median_delay_days"


def _findings(engine) -> pd.DataFrame:
    f = Finding.__table__
    with engine.connect() as c:
        rows = pd.DataFrame(c.execute(sa.select(*[f.c[k] for k in FINDING_COLUMNS])).all(), columns=FINDING_COLUMNS)
    return rows.sort_values(FINDING_COLUMNS[:6]).reset_index(drop=True)


def _alerts(engine) -> tuple[set[tuple], set[tuple]]:
    """(alerts, withdrawn alerts) as tuples of ALERT_COLUMNS."""
    a, e = Alert.__table__, AlertEvent.__table__
    with engine.connect() as c:
        rows = c.execute(sa.select(a.c.id, *[a.c[k] for k in ALERT_COLUMNS])).all()
        withdrawn = set(c.execute(sa.select(e.c.alert_id).where(e.c.kind == "withdrawn")).scalars())
    keep = {tuple(r[1:]) for r in rows if r[0] not in withdrawn}
    gone = {tuple(r[1:]) for r in rows if r[0] in withdrawn}
    return keep, gone


def _write(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["service_id", "period", "indicator", "value"])
        w.writeheader()
        w.writerows(rows)
    return path


def test_a_late_correction_gives_the_backfills_findings_and_alerts(tmp_path: Path, db_url):
    data = tmp_path / "data"
    write_panel(generate(seed=23, n_services=60, n_months=36), data)
    timely = db.get_engine(db_url)
    load_dataset(timely, data)
    run_detection(timely)
    assert run_detection(timely).up_to_date

    f = _findings(timely)
    last = int(f["month_index"].max())
    breaches = f[(f["indicator"] == DELAY) & (f["category"] == "rule") & (f["month_index"] >= last - 12)]
    assert len(breaches), "the generated panel must hold a delay breach to correct away"
    fixed = breaches.iloc[0]
    services = sorted(set(f["service_id"]) - set(f.loc[f["indicator"] == DELAY, "service_id"]))
    worse, first = services[0], last - 6
    rows = [{"service_id": worse, "period": month_label(m), "indicator": DELAY, "value": "400"}
            for m in range(first, first + 3)]
    fixed_months = f[(f["indicator"] == DELAY) & (f["category"] == "rule") & (f["service_id"] == fixed["service_id"])]
    rows += [{"service_id": fixed["service_id"], "period": p, "indicator": DELAY, "value": "40"}
             for p in sorted(set(fixed_months["period"]))]
    correction = _write(tmp_path / "correction.csv", rows)

    ingest_file(timely, correction)
    summary = run_detection(timely)
    assert not summary.up_to_date
    assert summary.corrections.first_month == min(first, int(fixed_months["month_index"].min()))
    assert "données corrigées depuis" in summary.summary_fr()
    assert run_detection(timely).up_to_date                      # nothing left to redo

    backfill = db.get_engine(f"sqlite:///{tmp_path / 'backfill.db'}")
    load_dataset(backfill, data)
    ingest_file(backfill, correction)
    run_detection(backfill)

    a, b = _findings(timely), _findings(backfill)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)
    assert ((a["service_id"] == worse) & (a["indicator"] == DELAY) & (a["category"] == "rule")).any()

    kept, withdrawn = _alerts(timely)
    expected, none = _alerts(backfill)
    assert none == set()
    assert kept == expected
    # the breach corrected away: withdrawn in A (classified as a data error), never raised in B
    assert any(w[:3] == (fixed["service_id"], DELAY, "rule") and w[3] == "dismissed" for w in withdrawn)
    assert not any(k[:3] == (fixed["service_id"], DELAY, "rule") for k in expected)
    # the breach the correction revealed: raised in both, at its own period
    assert any(k[:3] == (worse, DELAY, "rule") and k[4] == month_label(first) for k in kept)
    with timely.connect() as c:
        comments = c.execute(sa.select(AlertEvent.comment).where(AlertEvent.kind == "withdrawn")).scalars().all()
    assert all("corrigées" in x for x in comments)
