"""Evaluation: the scoring rules, and detection quality on a panel the code has never seen."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fixtures.harness.evaluation import GROUPS, score_alerts


def _labels():
    return pd.DataFrame([
        {"event_id": "E1", "service_id": "A", "indicator": "x", "kind": "drift", "subtype": "d",
         "start_period": "2025-03", "end_period": "2025-06"},
        {"event_id": "E2", "service_id": "B", "indicator": "y", "kind": "structural", "subtype": "s",
         "start_period": "2024-01", "end_period": "2025-12"},
        {"event_id": "F1", "service_id": "C", "indicator": "*", "kind": "fault", "subtype": "missing_report",
         "start_period": "2025-02", "end_period": "2025-02"},
    ])


def test_scoring_rules_window_indicator_and_wildcard():
    m = lambda p: int(p[:4]) * 12 + int(p[5:]) - 1  # noqa: E731
    alerts = pd.DataFrame([
        ("A", "x", "drift", m("2025-08")),          # end + 2 months: true positive
        ("A", "x", "peer_outlier", m("2025-02")),   # before the start: false
        ("A", "z", "drift", m("2025-04")),          # wrong indicator: false
        ("B", "y", "peer_outlier", m("2024-05")),   # structural: true
        ("C", "vip", "data_quality", m("2025-02")), # label '*' matches any indicator
        ("C", "vip", "data_quality", m("2025-09")), # too late: false
    ], columns=["service_id", "indicator", "category", "opened_month"])
    cats, kinds = GROUPS["statistique"]
    s = score_alerts(alerts, _labels(), n_services=10, n_months=20, group="stat", categories=cats, kinds=kinds)
    assert (s.openings, s.true_positives, s.labels, s.detected) == (4, 2, 2, 2)
    assert s.precision == 0.5 and s.recall == 1.0
    assert s.median_delay == pytest.approx((5 + 4) / 2)
    assert s.false_per_100_services_month == pytest.approx(100 * 2 / 200)
    cats, kinds = GROUPS["qualité des données"]
    d = score_alerts(alerts, _labels(), 10, 20, "dq", cats, kinds)
    assert (d.openings, d.true_positives, d.detected) == (2, 1, 1)


@pytest.mark.slow
def test_detection_quality_on_an_unseen_panel(tmp_path):
    """A seed, size and length never used during development; thresholds are not tuned to it."""
    from fixtures.generate import generate, write_panel
    from fixtures.harness.evaluation import evaluate_dir

    write_panel(generate(seed=4242, n_services=150, n_months=40), tmp_path)
    ev = evaluate_dir(tmp_path, "unseen", baselines=True)
    stat, dq = ev.scores
    assert stat.recall >= 0.8 and stat.precision >= 0.6, stat
    assert stat.f1 >= 0.85 and stat.median_delay <= 2, stat          # the targets
    assert stat.false_per_100_services_month <= 0.5
    assert dq.f1 >= 0.95, dq
    naive = ev.baselines["référence z naïf (|z|>3)"]
    assert stat.f1 > naive.f1 + 0.2, "the product must beat the naive baseline by a wide margin"


def test_values_without_counts_still_reach_the_peer_and_temporal_detectors(tmp_path):
    """Counts are optional in the exchange format: a panel sent as values only still works."""
    from fixtures.generate import generate
    from monitor.store import db
    from fixtures.harness.datasets import load_dataset
    from monitor.pipeline.detection import run_detection
    from fixtures.harness.evaluation import alert_openings

    panel = generate(seed=31, n_services=60, n_months=30, end="2025-06")
    obs = panel.observations
    obs = obs[obs["period"].str.len() == 7].drop(columns=["numerator", "denominator"])
    panel.services.to_csv(tmp_path / "services.csv", index=False)
    obs.to_csv(tmp_path / "indicators_all.csv", index=False, sep=";", decimal=",")
    engine = db.get_engine(f"sqlite:///{tmp_path / 'v.db'}")
    load_dataset(engine, tmp_path)
    summary = run_detection(engine)
    assert summary.months == 30
    alerts = alert_openings(engine)
    lab = panel.labels[panel.labels["kind"].isin(["structural", "drift"])]
    stat = alerts[alerts["category"].isin(["drift", "peer_outlier"])]
    hits = stat.merge(lab, on=["service_id", "indicator"])
    assert len(hits) >= max(1, len(lab[["service_id", "indicator"]].drop_duplicates()) // 2), (stat, lab)
    assert {"drift", "peer_outlier"} <= set(stat["category"])


def test_scoring_on_a_quarterly_panel_allows_the_next_period():
    m = lambda y, q: y * 12 + 3 * q - 1  # noqa: E731  (a quarter's last month)
    labels = pd.DataFrame([
        {"event_id": "E1", "service_id": "A", "indicator": "x", "kind": "drift", "subtype": "d",
         "start_period": "2025-Q2", "end_period": "2025-Q3"},
    ])
    alerts = pd.DataFrame([
        ("A", "x", "drift", m(2025, 4)),    # the quarter after the event: true
        ("A", "x", "drift", m(2026, 1)),    # two quarters after: false
        ("A", "x", "drift", m(2025, 1)),    # before: false
    ], columns=["service_id", "indicator", "category", "opened_month"])
    cats, kinds = GROUPS["statistique"]
    s = score_alerts(alerts, labels, n_services=10, n_months=8, group="stat", categories=cats, kinds=kinds, step=3)
    assert (s.openings, s.true_positives, s.detected) == (3, 1, 1)
    assert s.false_per_100_services_month == pytest.approx(100 * 2 / 80)     # per quarter
    assert s.matched_labels == {("E1", "x")}


def test_detectability_measures_an_event_against_the_noise():
    from fixtures.harness.evaluation import detectability

    rng = np.random.default_rng(0)
    rows = []
    for s in range(30):
        for t in range(36):
            v = 0.8 + rng.normal(0, 0.01)
            if s == 0 and t >= 24:
                v -= 0.2                      # a drift twenty noise units strong
            rows.append((f"S{s}", f"{2022 + t // 12}-{t % 12 + 1:02d}", "vip_init_in_delay_rate", v))
    obs = pd.DataFrame(rows, columns=["service_id", "period", "indicator", "value"])
    labels = pd.DataFrame([
        {"event_id": "E1", "service_id": "S0", "indicator": "vip_init_in_delay_rate", "kind": "drift",
         "subtype": "d", "start_period": "2024-01", "end_period": "2024-12"},
        {"event_id": "E2", "service_id": "S1", "indicator": "vip_init_in_delay_rate", "kind": "drift",
         "subtype": "d", "start_period": "2024-01", "end_period": "2024-12"},
    ])
    d = detectability(obs, labels).set_index("event_id")["d"]
    assert d["E1"] > 10 and d["E2"] < 3


@pytest.mark.slow
def test_the_evaluation_matrix_covers_styles_and_frequencies():
    from fixtures.harness.evaluation import evaluate_matrix, format_matrix

    lines = []
    rows = evaluate_matrix([3], ["base", "noisy"], ["M", "Y"], 30, 36, lines.append, baselines=False)
    assert [(r.style, r.frequency) for r in rows] == [("base", "M"), ("base", "Y"), ("noisy", "M"), ("noisy", "Y")]
    assert len(lines) == 4 and "[4/4]" in lines[-1]
    text = format_matrix(rows)
    assert "annuel" in text and "mensuel" in text and "Détectabilité" in text
    assert rows[0].evaluation.frequency == "M" and rows[1].evaluation.frequency == "Y"
