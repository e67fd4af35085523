"""Quarterly and yearly panels through the whole pipeline: a missing report is a data-quality
alert at every frequency, and periods are written and said as the data name them."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from fixtures._frequency import to_frequency
from fixtures.generate import generate, write_panel
from fixtures.harness.datasets import load_dataset
from monitor.pipeline.detection import run_detection
from monitor.store import db


@pytest.fixture(scope="module")
def monthly():
    return generate(seed=61, n_services=50, n_months=60, end="2026-09")


def _alerts(engine) -> pd.DataFrame:
    import sqlalchemy as sa

    from monitor.store.models import Alert

    with engine.connect() as c:
        rows = c.execute(sa.select(Alert.service_id, Alert.indicator, Alert.category, Alert.opened_period,
                                   Alert.last_period, Alert.explanation)).all()
    return pd.DataFrame(rows, columns=["service_id", "indicator", "category", "opened_period", "last_period",
                                       "explanation"])


@pytest.mark.parametrize("freq, pattern, report", [
    ("Q", r"^[0-9]{4}-Q[1-4]$", "Rapport trimestriel du "),
    ("Y", r"^[0-9]{4}$", "Rapport annuel de "),
])
def test_missing_reports_and_period_names_at_every_frequency(monthly, tmp_path, freq, pattern, report):
    panel = to_frequency(monthly, freq)
    write_panel(panel, tmp_path / "data")
    engine = db.get_engine(f"sqlite:///{tmp_path / 'f.db'}")
    load_dataset(engine, tmp_path / "data")
    summary = run_detection(engine)
    assert summary.months > 0
    alerts = _alerts(engine)
    # every missing report of the panel is found, at its own period
    missing = panel.labels[panel.labels["subtype"] == "missing_report"]
    assert len(missing)
    dq = alerts[(alerts["indicator"] == "*") & (alerts["category"] == "data_quality")]
    found = set(zip(dq["service_id"], dq["opened_period"]))
    assert set(zip(missing["service_id"], missing["start_period"])) <= found
    assert dq["explanation"].str.startswith(report).all()
    assert not dq["explanation"].str.contains("mensuel").any()
    # statistical alerts name the data's periods, not months
    stat = alerts[alerts["category"].isin(["drift", "peer_outlier"])]
    assert len(stat)
    core = alerts[alerts["indicator"] != "cotisation_vs_cmn_ratio"]
    assert core["opened_period"].map(lambda p: bool(re.match(pattern, p))).all(), core["opened_period"].unique()
    word = "trimestre" if freq == "Q" else r"en 20[0-9]{2}"
    assert stat["explanation"].str.contains(word).all()
    assert not stat["explanation"].str.contains("janvier|février|mars|avril|mai |juin|juillet|août|septembre"
                                                "|octobre|novembre|décembre").any()
    engine.dispose()
    db.get_engine.cache_clear()


def test_a_new_service_is_not_missing_before_its_first_report():
    import numpy as np

    from detectors.panel import Panel
    from detectors.quality import MissingReports

    years = [2021, 2022, 2023, 2024]
    rows = []
    for sid, first in (("OLD", 2022), ("NEW", 2023), ("UNKNOWN", 2023), ("STEADY", 2021)):
        for y in years:
            if y >= first:
                rows.append((sid, "physician_fte", str(y), "Y", y * 12 + 11, 10.0, np.nan, np.nan))
    obs = pd.DataFrame(rows, columns=["service_id", "indicator", "period", "period_kind", "month_index", "value",
                                      "numerator", "denominator"])
    services = pd.DataFrame({
        "agrement_start": ["2023-06-01", "2022-06-01", None, "2019-01-01"],   # OLD renewed its agrément in 2023
        "agrement_end": ["2028-05-31", "2027-05-31", "2030-01-01", "2029-01-01"],
    }, index=["OLD", "NEW", "UNKNOWN", "STEADY"])
    f = MissingReports().detect(Panel(obs, services), np.array([y * 12 + 11 for y in years]))
    assert list(zip(f["service_id"], f["month_index"])) == [("OLD", 2021 * 12 + 11)]
    assert f["explanation"].iloc[0] == "Rapport annuel de 2021 non reçu (aucun indicateur annuel transmis)"


def _mixed_panel(bad_service: str | None):
    """Physician FTE sent monthly and in the yearly survey by 12 services, yearly only by 8."""
    import numpy as np

    from detectors.panel import Panel

    rows = []
    for s in range(20):
        sid = f"S{s:02d}"
        for y in (2023, 2024):
            monthly = [10.0 + s + 0.1 * (m % 3) for m in range(12)]
            if s < 12:
                for m, v in enumerate(monthly):
                    rows.append((sid, "physician_fte", f"{y}-{m + 1:02d}", "M", y * 12 + m, v, np.nan, np.nan))
            yearly = round(float(np.mean(monthly)), 1)
            if sid == bad_service and y == 2024:
                yearly *= 1.6                     # the survey says 60 % more physicians than the extracts
            rows.append((sid, "physician_fte", str(y), "Y", y * 12 + 11, yearly, np.nan, np.nan))
    obs = pd.DataFrame(rows, columns=["service_id", "indicator", "period", "period_kind", "month_index", "value",
                                      "numerator", "denominator"])
    services = pd.DataFrame({"service_id": sorted(obs["service_id"].unique())}).set_index("service_id", drop=False)
    return Panel(obs, services)


def test_an_indicator_sent_at_two_frequencies_is_judged_at_the_finest_and_checked():
    import numpy as np

    from detectors.quality import FrequencyMismatch

    panel = _mixed_panel("S03")
    seen = panel.indicator("physician_fte")
    kinds = seen.groupby("service_id")["period_kind"].unique()
    assert all(list(k) == ["M"] for k in kinds[[f"S{s:02d}" for s in range(12)]])     # monthly services
    assert all(list(k) == ["Y"] for k in kinds[[f"S{s:02d}" for s in range(12, 20)]])  # survey only
    f = FrequencyMismatch().detect(panel, panel.months)
    assert list(zip(f["service_id"], f["month_index"])) == [("S03", 2024 * 12 + 11)]
    assert f["explanation"].iloc[0].startswith("ETP de médecins du travail : valeur annuelle de 2024")
    assert "incohérente avec les valeurs mensuelles" in f["explanation"].iloc[0]
    assert FrequencyMismatch().detect(_mixed_panel(None), np.arange(2023 * 12, 2025 * 12)).empty
