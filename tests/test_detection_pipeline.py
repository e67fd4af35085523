"""End-to-end detection on a small hand-built panel: alerts, idempotency, no look-ahead."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from helpers import INDICATOR_COLUMNS, REGISTER_COLUMNS, indicator_rows, register_rows, write_csv  # noqa: E402

from alerts.export import EXPORT_COLUMNS, export_alerts  # noqa: E402
from monitor.pipeline.detection import run_detection  # noqa: E402
from monitor.ingest.indicators import ingest_file  # noqa: E402
from monitor.store.models import Alert, AlertEvent  # noqa: E402
from monitor.ingest.register import load_register  # noqa: E402

MONTHS = [f"2024-{m:02d}" for m in range(1, 13)] + [f"2025-{m:02d}" for m in range(1, 10)]


def _panel(tmp_path: Path, outlier_from: str = "2025-01", outlier_to: str = "2025-05", drop_month: str | None = "2025-03"):
    svcs = register_rows(24)
    rows = indicator_rows(svcs, MONTHS, seed=3)
    bad = svcs[5]["service_id"]
    for r in rows:
        if r["service_id"] == bad and r["indicator"] == "vip_init_in_delay_rate" and outlier_from <= r["period"] <= outlier_to:
            r["numerator"] = int(r["denominator"] * 0.45)
            r["value"] = round(r["numerator"] / r["denominator"], 4)
    missing = svcs[7]["service_id"]
    if drop_month:
        rows = [r for r in rows if not (r["service_id"] == missing and r["period"] == drop_month)]
    rows.append({"service_id": svcs[9]["service_id"], "period": "2024-06", "indicator": "vip_init_in_delay_rate",
                 "value": 84, "numerator": "", "denominator": ""})
    write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS)
    write_csv(tmp_path / "ind.csv", rows, INDICATOR_COLUMNS)
    return svcs, bad, missing


def _load(engine, tmp_path):
    load_register(engine, tmp_path / "reg.csv")
    ingest_file(engine, tmp_path / "ind.csv")


def _openings(engine):
    with engine.connect() as c:
        return sorted(c.execute(sa.select(Alert.service_id, Alert.indicator, Alert.category,
                                          Alert.opened_period)).all())


def test_detect_opens_expected_alerts_and_exports_contract_columns(engine, tmp_path):
    svcs, bad, missing = _panel(tmp_path)
    _load(engine, tmp_path)
    summary = run_detection(engine)
    assert summary.months == len(MONTHS)
    opened = _openings(engine)
    peer = [o for o in opened if o[2] == "peer_outlier"]
    assert (bad, "vip_init_in_delay_rate", "peer_outlier", "2025-02") in peer, peer
    assert all(o[0] == bad for o in peer), "only the degraded service is a peer outlier"
    assert (missing, "*", "data_quality", "2025-03") in opened
    assert (svcs[9]["service_id"], "vip_init_in_delay_rate", "data_quality", "2024-06") in opened

    text = export_alerts(engine, fmt="csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0].keys()) == EXPORT_COLUMNS
    peer_row = next(r for r in rows if r["service_id"] == bad and r["category"] == "peer_outlier")
    assert peer_row["status"] == "resolved"          # back to normal from 2025-06, 3 normal months
    assert peer_row["severity"] in ("medium", "high")
    assert "Taux de VIP" in peer_row["explanation"] and "%" in peer_row["explanation"]
    assert "99,8 %" in peer_row["explanation"]
    js = json.loads(export_alerts(engine, fmt="json", status="resolved"))
    assert {r["status"] for r in js} == {"resolved"}
    assert set(js[0]) == set(EXPORT_COLUMNS)


def test_detect_is_idempotent_and_incremental(engine, tmp_path):
    _panel(tmp_path)
    _load(engine, tmp_path)
    run_detection(engine)
    before = _openings(engine)
    with engine.connect() as c:
        events = c.execute(sa.select(sa.func.count()).select_from(AlertEvent)).scalar_one()
    again = run_detection(engine)
    assert again.up_to_date
    assert _openings(engine) == before
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(AlertEvent)).scalar_one() == events


def test_as_of_then_full_equals_single_full_run(tmp_path, db_url):
    from monitor.store import db, schema

    _panel(tmp_path)
    urls = [db_url, f"sqlite:///{tmp_path / 'single.db'}"]
    engines = []
    for url in urls:
        e = db.get_engine(url)
        schema.init(e)
        _load(e, tmp_path)
        engines.append(e)
    run_detection(engines[0], as_of="2024-09")
    partial = _openings(engines[0])
    assert all(o[3] <= "2024-09" for o in partial)
    run_detection(engines[0])
    run_detection(engines[1])
    assert _openings(engines[0]) == _openings(engines[1])
    with engines[1].connect() as c:
        full_to_p = [o for o in _openings(engines[1]) if o[3] <= "2024-09"]
    assert partial == full_to_p


def test_reopen_after_resolution(engine, tmp_path):
    svcs, bad, _ = _panel(tmp_path, outlier_from="2024-10", outlier_to="2025-09")
    # the anomaly pauses in 2025-01..2025-04 (normal values), then returns
    rows = list(csv.DictReader(open(tmp_path / "ind.csv", encoding="utf-8")))
    for r in rows:
        if r["service_id"] == bad and r["indicator"] == "vip_init_in_delay_rate" and "2025-01" <= r["period"] <= "2025-04":
            r["numerator"] = str(int(int(r["denominator"]) * 0.82))
            r["value"] = str(round(int(r["numerator"]) / int(r["denominator"]), 4))
    write_csv(tmp_path / "ind.csv", rows, INDICATOR_COLUMNS)
    _load(engine, tmp_path)
    run_detection(engine)
    with engine.connect() as c:
        a = c.execute(sa.select(Alert).where(Alert.service_id == bad, Alert.category == "peer_outlier")).one()
        kinds = [k for (k,) in c.execute(sa.select(AlertEvent.kind).where(AlertEvent.alert_id == a.id)
                                         .order_by(AlertEvent.id))]
    assert kinds[:3] == ["opened", "resolved", "reopened"] or kinds[0] == "opened" and "reopened" in kinds
    assert a.status == "open"


def test_export_rejects_unknown_status_and_region(sqlite_engine):
    from alerts.export import ExportError

    with pytest.raises(ExportError, match="statut inconnu"):
        export_alerts(sqlite_engine, status="ouvert")
    with pytest.raises(ExportError, match="code région inconnu"):
        export_alerts(sqlite_engine, region="99")
    assert export_alerts(sqlite_engine).strip() == ",".join(EXPORT_COLUMNS)


def test_safe_cell_neutralises_formulas():
    from alerts.safe_csv import safe_cell

    assert safe_cell('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert safe_cell("+33 1 23") == "'+33 1 23"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("Service") == "Service"
    assert safe_cell(-3.5) == -3.5


def test_concurrent_detection_runs_do_not_apply_twice(engine, tmp_path):
    """A second run that finishes while the first computes: the first notices and retries."""
    _panel(tmp_path)
    _load(engine, tmp_path)
    reference = f"sqlite:///{tmp_path / 'ref.db'}"
    from monitor.store import db, schema

    ref = db.get_engine(reference)
    schema.init(ref)
    _load(ref, tmp_path)
    run_detection(ref)
    calls = {"n": 0}

    def progress(i, n, name):
        calls["n"] += 1
        if calls["n"] == 1:
            run_detection(engine)          # "another process" completes meanwhile

    summary = run_detection(engine, progress=progress)
    assert summary.up_to_date
    assert _openings(engine) == _openings(ref)
    with engine.connect() as c:
        n_runs = c.execute(sa.text("select count(*) from detection_runs")).scalar_one()
    assert n_runs == 1
