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
    # judged against the mean of its three previous years, which the text lists
    assert "en 2025" in text and "au vu de ses valeurs de 2022 à 2024 (" in text and "mois" not in text
    ev = f["evidence"].iloc[0]
    assert ev["method"] == "yearly_change" and list(ev["reference"]) == ["2022", "2023", "2024"]
    assert ev["previous"] == ev["reference"]["2024"]


def test_yearly_change_is_taken_from_the_mean_of_up_to_three_previous_years():
    """The reference of a yearly change is the mean of the service's previous (up to three)
    peer-relative values: a service whose last year was a low point is not flagged for
    returning to its usual level, and the score's variance counts the mean's."""
    from detectors.temporal import Residuals, yearly_change_z

    rng = np.random.default_rng(8)
    T, S = 5, 200
    r = rng.normal(0.0, 0.1, (T, S))
    r[:, 0] = [0.0, 0.0, -0.5, 0.0, 0.0]                       # one bad year, then back
    var = np.full((T, S), 0.001)
    res = Residuals("physician_fte", np.arange(T) * 12 + 24011, np.array([f"S{s}" for s in range(S)]),
                    np.exp(r), r, np.exp(r), r, var, np.zeros((T, 1)), np.exp)
    z, _, k = yearly_change_z(res, "lower")
    assert list(k[:, 0]) == [0, 1, 2, 3, 3]
    # the fourth and fifth years against the mean of the three before (-0.167): a rise, not worse
    d = r[3:, :] - np.stack([r[0:3].mean(0), r[1:4].mean(0)])
    med = np.median(d, axis=1, keepdims=True)
    assert (z[3:, 0] < 0).all()                                 # better: physicians came back
    # the scale: peers' MAD of d net of the variance of the value and of the mean of k values
    mad2 = (1.4826 * np.median(np.abs(d - med), axis=1)) ** 2
    tau2 = np.maximum(0.0, mad2 - (0.001 + 0.001 / 3))
    expected = -(d[:, 5] - med[:, 0]) / np.sqrt(tau2 + 0.001 + 0.001 / 3)
    assert z[3:, 5] == pytest.approx(expected)


def test_tail_factor_reads_heavy_tails_from_the_first_tested_periods():
    """A quarterly or yearly panel has ~190 residuals per period: the spike test must not
    assume normal tails until 500 exist (the first tested quarters raised most false alerts)."""
    from detectors.temporal import tail_factor

    rng = np.random.default_rng(5)
    heavy = rng.standard_t(3, size=(6, 190)) * 1.4          # wider and heavier than N(0, 1)
    normal = rng.standard_normal((6, 190))
    c_heavy, c_normal = tail_factor(heavy), tail_factor(normal)
    assert c_heavy[0] == 1.0 and c_normal[0] == 1.0        # nothing seen yet
    assert c_heavy[1] > 1.3                                 # one period of 190 already tells
    assert (c_normal[1:] < 1.25).all()
    # with many residuals, the extreme quantile is used again: same answer as a direct reading
    big = rng.standard_t(3, size=(40, 190))
    from scipy.stats import norm
    pooled = big[:-1].ravel()
    assert tail_factor(big)[-1] == pytest.approx(max(1.0, -np.quantile(pooled, 0.005) / norm.isf(0.005)))


def test_tail_threshold_is_the_fitted_generalised_pareto_quantile_of_the_better_side():
    """Peaks over threshold: once enough residuals exist, the spike threshold of a period is
    the quantile, at the normal tail probability of z0, of the generalised Pareto law fitted
    by L-moments to the better side's top 5 % (pooled up to that period), never below z0."""
    from scipy.stats import genpareto, lmoment, norm

    from detectors.temporal import gpd_lmoments, tail_threshold

    rng = np.random.default_rng(11)
    z0 = 4.13
    heavy = rng.standard_t(3, size=(30, 190))
    thr = tail_threshold(heavy, z0)
    # the last refit happened at the first period whose pool had grown 25 % past the previous fit
    sizes = np.arange(1, 31) * 190
    fits, last = [], 0
    for t, n in enumerate(sizes):
        if n * 0.05 >= 20 and n >= 1.25 * last:
            fits.append(t)
            last = n
    pool = np.sort(-heavy[:fits[-1] + 1].ravel())
    top = int(pool.size * 0.05)
    u = pool[-top - 1]
    excess = pool[-top:] - u
    shape, scale = gpd_lmoments(excess)
    # the L-moment estimator: l1 / l2 = 2 - shape, scale = l1 (1 - shape), with scipy's L-moments
    l1, l2 = lmoment(excess, order=[1, 2])
    assert shape == pytest.approx(2 - l1 / l2) and scale == pytest.approx(l1 * (1 - shape))
    # and it agrees with scipy's maximum likelihood fit on these 280 exceedances
    mle_shape, _, mle_scale = genpareto.fit(excess, floc=0.0)
    assert shape == pytest.approx(mle_shape, abs=0.1) and scale == pytest.approx(mle_scale, rel=0.15)
    expected = u + genpareto.isf(norm.sf(z0) / 0.05, shape, 0.0, scale)
    assert thr[-1] == pytest.approx(max(z0, expected))
    # a Student(3) tail reaches far beyond a normal one: the threshold rises well above z0
    assert thr[-1] > 2 * z0
    # normal residuals stay near z0 once their tail is read (a shape near zero or below; the
    # estimate of a few hundred exceedances still varies from panel to panel)
    finals = [tail_threshold(np.random.default_rng(s).standard_normal((30, 190)), z0)[-1] for s in range(5)]
    assert min(finals) == z0 and np.median(finals) < 1.1 * z0


def test_tail_threshold_reads_the_better_side_only_and_is_causal():
    """Worse-side values (drifts, the anomalies themselves) must not raise the threshold, and
    a period's threshold never depends on later periods."""
    from detectors.temporal import tail_threshold

    rng = np.random.default_rng(12)
    z = rng.standard_normal((20, 190))
    base = tail_threshold(z, 4.13)
    worse = z.copy()
    worse[:, :10] = 50.0                        # ten services far on the worse side every period
    assert tail_threshold(worse, 4.13) == pytest.approx(base, rel=0.1)
    later = z.copy()
    later[12:] = -rng.standard_t(2, size=(8, 190)) * 3     # heavier better side, later only
    moved = tail_threshold(later, 4.13)
    assert moved[:12] == pytest.approx(base[:12])
    assert moved[-1] > base[-1]


def test_own_seasonal_amplitude_is_found_and_shrunk_to_zero_when_absent():
    """A service that follows the seasons twice as strongly as its peers keeps one national
    swing in its peer-relative residual: its slope on the swing is about 1; services that follow
    the seasons like their peers get a slope shrunk to (nearly) zero."""
    from detectors.temporal import national_season, own_seasonal_amplitude

    rng = np.random.default_rng(8)
    T, S = 48, 60
    months = np.arange(T)
    season = 0.3 * np.sin(2 * np.pi * months / 12) - 0.4 * (months % 12 == 7)   # a deep August
    amplitude = np.ones(S)
    amplitude[0] = 2.0
    y = amplitude[None, :] * season[:, None] + rng.normal(0, 0.05, (T, S))
    centre = np.median(y, axis=1, keepdims=True)
    r = y - centre
    swing = national_season(centre, 12)
    assert np.isnan(swing[:12]).all() and np.isfinite(swing[12:]).all()
    beta = own_seasonal_amplitude(r, swing, 24)
    assert 0.7 < np.median(beta[40:, 0]) < 1.3
    others = beta[40:, 1:]
    assert np.median(np.abs(others)) < 0.05
    assert (beta[:20] == 0).all()                   # too little history: no adjustment


def test_a_service_with_deeper_seasons_of_its_own_is_not_a_spike_every_august():
    from detectors.temporal import TemporalConfig, residuals

    rng = np.random.default_rng(9)
    T, S = 48, 80
    months = np.arange(T) + 1          # START is a January: month 8 of the year is August
    season = np.where(months % 12 == 8, -0.35, 0.0) + 0.1 * np.sin(2 * np.pi * months / 12)
    amp = np.ones(S)
    amp[0] = 2.5
    fte = 10 * np.exp(amp[None, :] * season[:, None] + rng.normal(0, 0.03, (T, S)))
    panel = value_panel("physician_fte", np.round(fte, 2))
    adjusted = residuals(panel, "physician_fte", TemporalConfig(own_seasonality=True))
    plain = residuals(panel, "physician_fte", TemporalConfig(own_seasonality=False))
    aug = (months % 12 == 8) & (months > 36)
    # worse side of FTE is lower: z > 0 is a drop
    assert np.nanmax(plain.z[aug, 0]) > 4.0
    assert np.nanmax(adjusted.z[aug, 0]) < 3.0


def test_nanmedian_last_is_numpys_nanmedian():
    """The windows' median (temporal.nanmedian_last) gives numpy's numbers: odd and even counts,
    missing values, infinities, all-missing windows."""
    import warnings

    from detectors.temporal import nanmedian_last

    rng = np.random.default_rng(11)
    a = rng.normal(size=(30, 40, 24))
    a[rng.random(a.shape) < 0.3] = np.nan
    a[0, 0, :] = np.nan
    a[1, 1, :3] = np.inf
    a[2, 2, :5] = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(a, axis=-1)
    assert np.array_equal(nanmedian_last(a), expected, equal_nan=True)
    assert np.isnan(nanmedian_last(a)[0, 0]) and np.isfinite(nanmedian_last(a)[1, 5])


def test_resetting_signals_are_the_cusums_signals():
    """The scale study's lean CUSUM (cusum.resetting_signals) signals exactly where
    detectors.cusum.upper_cusum(reset=True) does, missing periods included."""
    from detectors.cusum import resetting_signals, upper_cusum

    rng = np.random.default_rng(4)
    z = rng.standard_t(3, size=(40, 300)) + np.linspace(0, 1.5, 300)[None, :]
    z[rng.random(z.shape) < 0.2] = np.nan
    mine = resetting_signals(z, 0.5, 3.0)
    theirs = np.asarray(upper_cusum(z, 0.5, 3.0, reset=True).signal)
    assert theirs.sum() > 50 and np.array_equal(mine, theirs)
