"""Temporal detector: own baseline net of peers, and what counts as noise in a reported number."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors.panel import Panel
from detectors.temporal import TemporalConfig, TemporalDrift, quantisation_variance, resolution

START = 24240  # January 2020


def value_panel(code: str, values: np.ndarray) -> Panel:
    """A panel of one value-only indicator from a months × services matrix."""
    T, S = values.shape
    months = np.repeat(START + np.arange(T), S)
    sids = np.tile([f"S{j:03d}" for j in range(S)], T)
    obs = pd.DataFrame({"service_id": sids, "indicator": code, "period": "", "period_kind": "M",
                        "month_index": months, "value": values.ravel(), "numerator": np.nan,
                        "denominator": np.nan})
    services = pd.DataFrame({"service_id": sorted(set(sids))}).set_index("service_id", drop=False)
    return Panel(obs, services)


def test_resolution_is_the_largest_power_of_ten_or_half_of_one_dividing_the_number():
    got = resolution(np.array([0.6, 18.0, 5718.3, 0.05, 72.0, 0.0, np.nan, 1200.0, 0.7863, 3.5, 2.0, 0.25]))
    want = np.array([0.1, 1.0, 0.1, 0.05, 1.0, np.nan, np.nan, 100.0, 1e-4, 0.5, 1.0, 0.05])
    np.testing.assert_allclose(got, want)


def test_quantisation_variance_uses_the_finest_step_seen_so_far():
    # 18 looks like a whole number, but 18.1 a month later shows the series is reported to 0.1;
    # the first month cannot know that yet (causal), the later ones do.
    q = quantisation_variance(np.array([[0.6, 18.0], [0.5, 18.1], [0.5, 18.0]]))
    np.testing.assert_allclose(q[:, 0], [(0.1 / 0.6) ** 2 / 12, (0.1 / 0.5) ** 2 / 12, (0.1 / 0.5) ** 2 / 12])
    np.testing.assert_allclose(q[:, 1], [(1 / 18) ** 2 / 12, (0.1 / 18.1) ** 2 / 12, (0.1 / 18) ** 2 / 12])


def _fte_panel(small_path: np.ndarray, seed: int = 3) -> Panel:
    rng = np.random.default_rng(seed)
    T, S = len(small_path), 40
    level = rng.uniform(3, 20, S)
    true = level * np.exp(np.cumsum(rng.normal(0, 0.01, (T, S)), axis=0))
    true[:, 0] = small_path
    return value_panel("physician_fte", np.round(true, 1))


def _findings(panel: Panel) -> pd.DataFrame:
    det = TemporalDrift(TemporalConfig(indicators=("physician_fte",)))
    f = det.detect(panel, panel.months)
    return f[(f["service_id"] == "S000") & ~f["sustain"]]


def test_a_rounding_step_in_a_small_service_is_not_a_collapse():
    # 0.56 FTE reported to one decimal: 0.6 for two years, then 0.5 (a 17 % step on paper)
    path = np.r_[np.full(30, 0.56), np.full(10, 0.54)]
    assert _findings(_fte_panel(path)).empty


@pytest.mark.parametrize("after", [0.3, 0.2])
def test_a_real_loss_of_physician_time_in_a_small_service_is_found(after):
    path = np.r_[np.full(30, 0.56), np.full(6, after)]
    f = _findings(_fte_panel(path))
    assert not f.empty
    assert f["month_index"].min() == START + 30


def count_panel(code: str, counts: np.ndarray, workers: np.ndarray, scale: float) -> Panel:
    T, S = counts.shape
    p = value_panel(code, scale * counts / workers)
    p.observations["numerator"] = counts.ravel().astype(float)
    p.observations["denominator"] = workers.ravel().astype(float)
    return p


def _complaints(multiplier: np.ndarray, size: int, seed: int, set_count: dict | None = None
                ) -> tuple[pd.DataFrame, np.ndarray]:
    """40 services, 40 months of complaints at 0.4 per 10,000 workers a month; service 0 has
    ``size`` workers and its expected count is multiplied by ``multiplier`` (one value a month);
    ``set_count`` forces some of its months' counts."""
    rng = np.random.default_rng(seed)
    T, S = len(multiplier), 40
    workers = np.tile(rng.uniform(8_000, 120_000, S), (T, 1))
    workers[:, 0] = size
    mean = workers * 0.4 / 10_000
    mean[:, 0] *= multiplier
    counts = rng.poisson(mean)
    for t, c in (set_count or {}).items():
        counts[t, 0] = c
    panel = count_panel("complaints_per_10k", counts, workers, 10_000)
    det = TemporalDrift(TemporalConfig(indicators=("complaints_per_10k",)))
    f = det.detect(panel, panel.months)
    return f[(f["service_id"] == "S000") & ~f["sustain"]], counts[:, 0]


def test_a_few_complaints_in_a_small_service_are_not_a_spike():
    # 10,000 workers expect 0.4 complaints a month; 3 in one month happens (P ≈ 0.8 %)
    raised = [not _complaints(np.ones(40), 10_000, seed, {32: 3})[0].empty for seed in range(20)]
    assert sum(raised) <= 1
    # ... but 12 in one month is (P < 1e-9 under Poisson(0.4))
    raised = [not _complaints(np.ones(40), 10_000, seed, {32: 12})[0].empty for seed in range(5)]
    assert all(raised)


def test_a_lasting_surge_of_complaints_in_a_large_service_is_found():
    mult = np.r_[np.ones(30), np.full(10, 3.0)]
    found = [_complaints(mult, 80_000, seed)[0] for seed in range(10)]
    assert sum(not f.empty for f in found) >= 9
    assert all(f["month_index"].min() >= START + 30 for f in found if not f.empty)


def test_pooled_overdispersion_agrees_with_statsmodels_negative_binomial():
    """The NB2 moment estimator against statsmodels' maximum-likelihood NegativeBinomial."""
    import statsmodels.api as sm

    from detectors.temporal import pooled_overdispersion

    rng = np.random.default_rng(5)
    T, S, alpha = 30, 300, 0.12
    expected = rng.uniform(1.0, 30.0, (T, S))
    counts = rng.poisson(expected * rng.gamma(1 / alpha, alpha, (T, S))).astype(float)
    ours = pooled_overdispersion(counts, expected, clip=np.inf)
    fit = sm.NegativeBinomial(counts[:-1].ravel(), np.ones(counts[:-1].size),
                              offset=np.log(expected[:-1].ravel())).fit(disp=0)
    assert ours[-1] == pytest.approx(fit.params[-1], rel=0.1)       # alpha, the last parameter
    assert ours[-1] == pytest.approx(alpha, rel=0.15)
    assert ours[0] == 0.0                                         # causal: nothing before the first month
    poisson = pooled_overdispersion(rng.poisson(expected).astype(float), expected)
    assert poisson[-1] < 0.01                                     # Poisson counts: no extra variance


def test_a_yearly_series_is_judged_by_its_change_against_its_peers_changes():
    """Four yearly points: no baseline of its own, but a change its peers did not make shows."""
    rng = np.random.default_rng(3)
    S, years = 120, [2022, 2023, 2024, 2025]
    level = rng.normal(np.log(20.0), 0.4, S)
    rows = []
    for j, y in enumerate(years):
        trend = -0.03 * j                                     # every service loses 3 % a year
        for s in range(S):
            v = np.exp(level[s] + trend + rng.normal(0, 0.03))
            if s == 0 and y == 2025:
                v *= 0.6                                      # a 40 % loss of physicians
            rows.append((f"S{s:03d}", "physician_fte", str(y), "Y", y * 12 + 11, round(v, 1), np.nan, np.nan))
    obs = pd.DataFrame(rows, columns=["service_id", "indicator", "period", "period_kind", "month_index", "value",
                                      "numerator", "denominator"])
    services = pd.DataFrame({"service_id": sorted({r[0] for r in rows})}).set_index("service_id", drop=False)
    panel = Panel(obs, services)
    f = TemporalDrift().detect(panel, panel.months)   # the family's budget shared by its 11 indicators
    f = f[~f["sustain"]]
    assert list(f["service_id"]) == ["S000"] and list(f["month_index"]) == [2025 * 12 + 11]
    text = f["explanation"].iloc[0]
    assert "en 2025" in text and "au vu de sa valeur de 2024" in text and "mois" not in text
    assert f["evidence"].iloc[0]["method"] == "yearly_change"
