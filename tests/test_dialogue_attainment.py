"""Attainment of CPOM objectives on the indicator's worse side, and the trend."""
from __future__ import annotations

import pandas as pd
import pytest

from monitor.dialogue.attainment import attainment, is_met, trend, yearly_values


def _obs(rows):
    return pd.DataFrame(rows, columns=["service_id", "indicator", "period_kind", "month_index", "value",
                                       "numerator", "denominator"])


def test_met_follows_the_worse_side():
    # lower is worse (a rate of visits in time): at least the target
    assert is_met(0.85, 0.80, "lower") is True
    assert is_met(0.75, 0.80, "lower") is False
    # higher is worse (a delay): at most the target
    assert is_met(55.0, 60.0, "higher") is True
    assert is_met(65.0, 60.0, "higher") is False
    assert is_met(float("nan"), 60.0, "higher") is None
    assert trend(50.0, 60.0, "higher") == "better"
    assert trend(0.70, 0.80, "lower") == "worse"
    assert trend(0.80, 0.8001, "lower") == "stable"


def test_yearly_value_from_months_counts_and_annual_rates():
    m = 2024 * 12
    obs = _obs([
        # a proportion: Σ numerators / Σ denominators, not the mean of the months
        ("S", "vip_init_in_delay_rate", "M", m + 0, 0.5, 10, 20),
        ("S", "vip_init_in_delay_rate", "M", m + 1, 0.9, 90, 100),
        # a rate per 1,000 workers in the period: months add up to a year (2 months -> ×6)
        ("S", "amt_per_1000", "M", m + 0, 3.0, 3, 1000),
        ("S", "amt_per_1000", "M", m + 1, 5.0, 5, 1000),
        # a level: the mean
        ("S", "vip_init_median_delay_days", "M", m + 0, 40.0, None, None),
        ("S", "vip_init_median_delay_days", "M", m + 1, 60.0, None, None),
        # a declared yearly value wins over the months of the same year
        ("S", "physician_fte", "M", m + 0, 9.0, None, None),
        ("S", "physician_fte", "Y", m + 11, 10.0, None, None),
    ])
    y = yearly_values(obs).set_index("indicator")
    assert y.loc["vip_init_in_delay_rate", "value"] == pytest.approx(100 / 120)
    assert y.loc["amt_per_1000", "value"] == pytest.approx(1000 * 8 / 1000 * 6)
    assert y.loc["vip_init_median_delay_days", "value"] == pytest.approx(50.0)
    assert y.loc["physician_fte", "value"] == pytest.approx(10.0)
    assert not bool(y.loc["amt_per_1000", "complete"])


def test_attainment_table_with_trend():
    objectives = pd.DataFrame([
        ("S", "vip_init_median_delay_days", 2025, 45.0, "délai"),      # higher is worse
        ("S", "reprise_within_8d_rate", 2025, 0.80, None),             # lower is worse
        ("S", "reprise_within_8d_rate", 2026, 0.80, None),             # no data
    ], columns=["service_id", "indicator", "year", "target", "label"])
    yearly = pd.DataFrame([
        ("S", "vip_init_median_delay_days", 2024, 50.0, 12, True),
        ("S", "vip_init_median_delay_days", 2025, 44.0, 12, True),
        ("S", "reprise_within_8d_rate", 2024, 0.85, 12, True),
        ("S", "reprise_within_8d_rate", 2025, 0.78, 12, True),
    ], columns=["service_id", "indicator", "year", "value", "months", "complete"])
    att = attainment(objectives, yearly).set_index(["indicator", "year"])
    delay = att.loc[("vip_init_median_delay_days", 2025)]
    assert delay["met"] is True and delay["trend"] == "better" and delay["gap"] == pytest.approx(1.0)
    reprise = att.loc[("reprise_within_8d_rate", 2025)]
    assert reprise["met"] is False and reprise["trend"] == "worse" and reprise["gap"] == pytest.approx(-0.02)
    assert att.loc[("reprise_within_8d_rate", 2026)]["met"] is None
