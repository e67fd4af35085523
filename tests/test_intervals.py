"""Intervals of a service's own value (statsmodels) and the robust between-unit variance of
the peer funnel."""
from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.rates import confint_poisson

from detectors.funnel import funnel, robust_tau2
from detectors.intervals import value_interval


def test_proportion_interval_is_statsmodels_wilson():
    num = np.array([0, 3, 45, 99, 100])
    den = np.array([10, 30, 60, 100, 100])
    lo, hi = value_interval("vip_init_in_delay_rate", num, den)
    ref_lo, ref_hi = proportion_confint(num, den, alpha=0.05, method="wilson")
    np.testing.assert_allclose(lo, ref_lo)
    np.testing.assert_allclose(hi, ref_hi)
    assert (lo <= num / den).all() and (num / den <= hi).all()
    assert lo[0] == pytest.approx(0.0, abs=1e-12) and hi[-1] == pytest.approx(1.0)


def test_rate_interval_is_statsmodels_exact_poisson_on_the_catalogue_scale():
    counts = np.array([0.0, 3.0, 40.0])
    workers = np.array([2000.0, 5000.0, 50000.0])
    lo, hi = value_interval("pdp_cases_per_1000", counts, workers)
    ref_lo, ref_hi = confint_poisson(counts, workers, method="exact-c")
    np.testing.assert_allclose(lo, np.asarray(ref_lo) * 1000)
    np.testing.assert_allclose(hi, np.asarray(ref_hi) * 1000)
    assert lo[0] == 0 and hi[0] > 0          # no event still has an upper bound
    assert ((lo <= counts / workers * 1000) & (counts / workers * 1000 <= hi)).all()


def test_unusable_counts_and_indicators_without_counts_give_no_interval():
    lo, hi = value_interval("vip_init_in_delay_rate", [5, np.nan, 3, 1], [4, 10, 0, -1])
    assert np.isnan(lo).all() and np.isnan(hi).all()
    lo, hi = value_interval("physician_fte", [1.0], [2.0])
    assert np.isnan(lo).all()


def test_wilson_interval_covers_the_true_proportion_about_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    p, n = 0.12, 40
    num = rng.binomial(n, p, 4000)
    lo, hi = value_interval("sir_overdue_rate", num, np.full(num.size, n))
    coverage = np.mean((lo <= p) & (p <= hi))
    assert 0.92 <= coverage <= 0.98


def _heterogeneous_units(rng, m=190, tau=0.08, outliers=0):
    den = np.round(np.exp(rng.normal(7.5, 1.0, m)))            # large and small units
    theta = np.arcsin(np.sqrt(0.8)) + rng.normal(0, tau, m)    # true between-unit spread
    p = np.sin(np.clip(theta, 0, np.pi / 2)) ** 2
    if outliers:
        p[:outliers] = 0.35
    num = rng.binomial(den.astype(int), p).astype(float)
    return num, den


def _spread(z):
    return 1.4826 * np.median(np.abs(z - np.median(z)))


def test_robust_tau2_gives_adjusted_z_a_unit_spread_and_never_lowers_tau2():
    rng = np.random.default_rng(11)
    num, den = _heterogeneous_units(rng)
    res = funnel(num, den, kind="proportion", transform="arcsine", overdispersion="additive", trim=0.10)
    t = res.table
    wider = robust_tau2(t["y"], t["s"], res.target_transformed, res.tau2)
    assert wider >= res.tau2
    z_dl = (t["y"] - res.target_transformed) / np.sqrt(t["s"] ** 2 + res.tau2)
    z = (t["y"] - res.target_transformed) / np.sqrt(t["s"] ** 2 + wider)
    assert _spread(z_dl) > 1.05                     # the winsorised estimate is too narrow here
    assert _spread(z) == pytest.approx(1.0, abs=1e-3)
    # already wide enough: unchanged
    assert robust_tau2(t["y"], t["s"], res.target_transformed, 10 * wider) == 10 * wider


def test_robust_tau2_is_closer_to_the_true_spread_and_not_moved_by_a_few_outliers():
    rng = np.random.default_rng(12)
    errors_dl, errors_robust = [], []
    for _ in range(20):
        num, den = _heterogeneous_units(rng, tau=0.08)
        res = funnel(num, den, kind="proportion", transform="arcsine", overdispersion="additive", trim=0.10)
        t = res.table
        errors_dl.append(abs(np.sqrt(res.tau2) - 0.08))
        errors_robust.append(abs(np.sqrt(robust_tau2(t["y"], t["s"], res.target_transformed, 0.0)) - 0.08))
    assert np.median(errors_robust) < np.median(errors_dl)
    rng = np.random.default_rng(13)
    num, den = _heterogeneous_units(rng, outliers=0)
    num_o, den_o = num.copy(), den.copy()
    num_o[:5] = np.round(0.35 * den_o[:5])                     # five gross outliers
    est = []
    for n_, d_ in ((num, den), (num_o, den_o)):
        res = funnel(n_, d_, kind="proportion", transform="arcsine", overdispersion="additive", trim=0.10)
        est.append(robust_tau2(res.table["y"], res.table["s"], res.target_transformed, 0.0))
    assert est[1] == pytest.approx(est[0], rel=0.25)
