"""The fixtures' noisier style and their quarterly and yearly variants."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fixtures._frequency import period_of, to_frequency
from fixtures.generate import generate


@pytest.fixture(scope="module")
def monthly():
    return generate(seed=17, n_services=40, n_months=40, end="2025-12")


def test_period_of():
    s = pd.Series(["2024-01", "2024-03", "2024-04", "2024-12", "2024-Q2", "2024"])
    assert list(period_of(s, "Q")) == ["2024-Q1", "2024-Q1", "2024-Q2", "2024-Q4", "2024-Q2", "2024-Q4"]
    assert list(period_of(s, "Y")) == ["2024"] * 6


def _clean(panel):
    obs = panel.observations.drop_duplicates(["service_id", "indicator", "period"], keep=False)
    faults = panel.labels[panel.labels["kind"] == "fault"]
    bad = set(zip(faults["service_id"], faults["start_period"]))
    return obs[[(s, p) not in bad for s, p in zip(obs["service_id"], obs["period"])]]


@pytest.mark.parametrize("freq", ["Q", "Y"])
def test_aggregates_are_sums_of_the_clean_months(monthly, freq):
    agg = to_frequency(monthly, freq)
    obs = agg.observations
    complete = set(agg.params["periods"])
    core = obs[obs["indicator"] != "cotisation_vs_cmn_ratio"]
    assert set(core["period"]) == complete
    assert (freq == "Y") == all(len(p) == 4 for p in complete)
    clean = _clean(monthly)
    clean = clean[clean["indicator"] == "vip_init_in_delay_rate"].copy()
    clean["agg"] = period_of(clean["period"], freq)
    for c in ("numerator", "denominator"):
        clean[c] = pd.to_numeric(clean[c])
    sums = clean.groupby(["service_id", "agg"])[["numerator", "denominator"]].sum()
    counts = clean.groupby(["service_id", "agg"]).size()
    full = counts[counts == (3 if freq == "Q" else 12)].index
    got = obs[obs["indicator"] == "vip_init_in_delay_rate"].drop_duplicates(
        ["service_id", "period"], keep=False).set_index(["service_id", "period"])
    both = full.intersection(got.index)
    assert len(both) > 50
    assert np.allclose(got.loc[both, "numerator"], sums.loc[both, "numerator"])
    assert np.allclose(got.loc[both, "value"], (sums.loc[both, "numerator"] / sums.loc[both, "denominator"]).round(4))


@pytest.mark.parametrize("freq", ["Q", "Y"])
def test_faults_and_events_are_kept_at_the_coarser_frequency(monthly, freq):
    agg = to_frequency(monthly, freq)
    lab, obs = agg.labels, agg.observations
    periods = set(agg.params["periods"])
    events = lab[lab["kind"] != "rule"]
    assert set(events["start_period"]) | set(events["end_period"]) <= periods
    missing = lab[lab["subtype"] == "missing_report"]
    assert len(missing)
    for _, m in missing.iterrows():     # a whole period's report is missing
        assert obs[(obs["service_id"] == m["service_id"]) & (obs["period"] == m["start_period"])].empty
    pct = lab[lab["subtype"] == "percent_instead_of_fraction"]
    for _, m in pct.iterrows():
        v = obs[(obs["service_id"] == m["service_id"]) & (obs["period"] == m["start_period"])
                & (obs["indicator"] == m["indicator"])]["value"]
        assert (v > 1).all()
    assert (lab["kind"] == "drift").any() and (lab["kind"] == "structural").any()


def test_noisy_style_departs_from_the_model_with_the_same_events():
    base = generate(seed=23, n_services=60, n_months=36)
    noisy = generate(seed=23, n_services=60, n_months=36, style="noisy")
    assert len(noisy.labels) > 0 and set(noisy.labels["kind"]) == set(base.labels["kind"])

    def dispersion(panel):
        o = panel.observations
        c = pd.to_numeric(o.loc[o["indicator"] == "amt_per_1000", "numerator"]).to_numpy()
        sid = o.loc[o["indicator"] == "amt_per_1000", "service_id"].to_numpy()
        df = pd.DataFrame({"s": sid, "c": c}).groupby("s")["c"].agg(["mean", "var"])
        return float((df["var"] / df["mean"]).median())

    assert dispersion(noisy) > 1.5 * dispersion(base)       # counts vary more than Poisson
    fte = pd.to_numeric(noisy.observations.loc[noisy.observations["indicator"] == "physician_fte", "value"])
    small = fte[fte < 7.5]
    assert len(small) and np.allclose(small * 2, np.round(small * 2))      # small services round to the half
    with pytest.raises(ValueError, match="style"):
        generate(seed=1, n_services=20, n_months=12, style="chaotic")
