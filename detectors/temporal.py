"""Temporal detectors: has the service changed against its own past, beyond its peers?

1. **Peer-relative residual.** Each month, every service's value is put on a variance-
   stabilising scale and expressed relative to the median of all services that month:

   * proportions: ``y = asin(sqrt(p))``, sampling variance ``1 / (4 n)``;
   * rates with counts: ``y = log((O + 0.5) / workers)``, sampling variance ``1 / (O + 0.5)``,
     used for the service's own spread; the month itself is scored exactly (see 2.);
   * other indicators: ``y = log(value)``, no sampling variance but the rounding of the
     reported numbers (``step² / 12`` relative; a ratio inherits its numerator's and
     denominator's rounding, e.g. physician FTE reported to one decimal).

   ``r = y - median_services(y)`` removes what all services share that month: seasonality
   (August, December) and national trends (the physician shortage). A service drifts when
   its ``r`` changes, not when it follows its peers.

2. **Own baseline.** Over the previous 24 months of observations (and only once a service
   has two full seasonal cycles of history: a spread estimated on fewer is unreliable),
   the robust centre ``mu = median(r)`` and spread ``MAD`` (× 1.4826). With ``v`` the sampling
   variance, the service's own month-to-month variance is ``max(0, MAD² - median(v_past))``
   and the standardised residual of month t is

       z_t = (r_t - mu) / sqrt(own variance + v_t + floor²)

   oriented so that positive = the worse side of the indicator (catalogue "worse when").
   Counts are scored exactly instead: the expected count E is the peers' rate this month
   times the service's size times its own standardised ratio over the window
   (:func:`expected_counts`, a mean: a median of months with 0 or 1 event is not a rate), and
   z is the normal score of the observed count under a negative binomial of mean E whose
   extra variance is the service's own (:func:`count_z`). Three complaints where 0.4 were
   expected happen about once in 100 months: no spike.
   Baselines use months before t only: findings are causal (the spike threshold of month t
   also reads the better side of that month's peers, known when it is scored).

3. **Tests.** A one-sided upper CUSUM on z (``k`` = 0.5, threshold ``h`` calibrated by average
   run length with :func:`detectors.cusum.calibrate_h`), which catches slow drifts, and a
   large-residual test (``z`` beyond a threshold) for one-month collapses and spikes: the
   quantile, at the normal tail probability of ``spike_z``, of a generalised Pareto law fitted
   to the better side of the residuals (:func:`tail_threshold`, never below ``spike_z``). A CUSUM finding is
   reported while the statistic is above ``h`` and the month itself is still on the worse
   side (``z > k``), so an alert resolves once the series is back to normal.

The in-control ARL is derived from an alert budget rather than tuned on data: with
``budget`` false alerts per 100 services per month shared by ``n_series`` monitored indicators
per service, each series may signal once every ``n_series × 100 / budget`` months.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from monitor.vocabulary.formatting import fmt_value, fr_number, label
from monitor.vocabulary.periods import period_code, period_name_fr, period_of_fr, period_phrase_fr, since_fr
from detectors.base import Detector, DetectorConfig, empty_findings
from detectors.budget import ALERT_BUDGET, budget_arl, budget_z
from detectors.cusum import calibrate_h, resetting_signals, upper_cusum
from detectors.panel import Panel, trailing_windows, wide_last
from monitor.vocabulary.catalogue import CATALOGUE

MAD_SCALE = 1.4826

TEMPORAL_INDICATORS = (
    "vip_init_in_delay_rate", "vip_init_median_delay_days", "sir_overdue_rate",
    "reprise_within_8d_rate", "workers_per_physician_fte", "physician_fte", "nurse_fte",
    "pdp_cases_per_1000", "prereprise_per_1000", "amt_per_1000", "complaints_per_10k",
)


@dataclasses.dataclass(frozen=True)
class TemporalConfig(DetectorConfig):
    DERIVED = ("spike_z", "arl0", "h")
    indicators: tuple[str, ...] = TEMPORAL_INDICATORS
    window_months: int = 24           # baseline length (8 observations of a quarterly series)
    min_history_months: int = 24      # two seasonal cycles before a service is tested
    k: float = 0.5                    # CUSUM allowance (targets a 1-sigma shift)
    cusum_clip: float = 4.0           # winsorisation of the CUSUM's input (Lucas & Crosier 1982)
    budget: float = ALERT_BUDGET
    high_z: float = 6.0
    floor_proportion: float = 0.01    # minimum spread on the arcsine scale
    floor_log: float = 0.02           # minimum spread on the log scale (2 %)
    shrink_weight: float = 12.0       # prior weight of the pooled spread, in observations
    own_seasonality: bool = False     # adjust each service's own seasonal amplitude (measured: see README)

    @property
    def spike_z(self) -> float:
        """Large-residual threshold: the budget over one test per indicator (11: z > 4.13)."""
        return budget_z(self.budget, len(self.indicators))

    @property
    def arl0(self) -> float:
        """In-control ARL of each series (11 indicators: 55,000 months)."""
        return budget_arl(self.budget, len(self.indicators))

    @property
    def h(self) -> float:
        return calibrate_h(self.k, self.arl0)


def _past_windows(a: np.ndarray, window: int) -> np.ndarray:
    """(T, S, window) view of the ``window`` rows before each row (NaN-padded), per column."""
    return trailing_windows(a, window, current=False)


def _nan_window_stat(a: np.ndarray, window: int, fn) -> np.ndarray:
    """fn over the previous ``window`` rows (excluding the current one), per column."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(_past_windows(a, window), axis=-1)


def past_median_mad(a: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, MAD (× 1.4826) and number of observations of the previous ``window`` rows."""
    return window_median_mad(_past_windows(a, window))


def nanmedian_last(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=-1)``, by one sort of the last axis (NaN sorts last) and the
    middle order statistics of each row's non-missing values: the same numbers, without
    numpy's masked-array path for short axes (seconds on 18,000 services × 24-month windows)."""
    a = np.asarray(a, dtype=float)
    ordered = np.sort(a, axis=-1)
    n = (~np.isnan(a)).sum(axis=-1)
    lo = np.maximum((n - 1) // 2, 0)[..., None]
    hi = np.maximum(n // 2, 0)[..., None]
    with np.errstate(invalid="ignore"):
        med = (np.take_along_axis(ordered, lo, -1)[..., 0] + np.take_along_axis(ordered, hi, -1)[..., 0]) / 2
    return np.where(n > 0, med, np.nan)


def window_median_mad(win: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, MAD (× 1.4826) and number of observations over the last axis of ``win``."""
    med = nanmedian_last(win)
    mad = MAD_SCALE * nanmedian_last(np.abs(win - med[..., None]))
    return med, mad, np.isfinite(win).sum(axis=-1).astype(float)


def national_season(centre: np.ndarray, season: int) -> np.ndarray:
    """The peers' seasonal swing each period: the peer centre minus its mean over the previous
    ``season`` periods (causal; NaN until a whole season has passed). (T, 1)."""
    c = np.asarray(centre, dtype=float).reshape(-1)
    out = np.full(c.shape, np.nan)
    if c.size > season:
        csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(c))])
        n = np.concatenate([[0], np.cumsum(np.isfinite(c))])
        t = np.arange(season, c.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (csum[t] - csum[t - season]) / (n[t] - n[t - season])
        out[season:] = c[season:] - mean
    return out[:, None]


def own_seasonal_amplitude(r: np.ndarray, swing: np.ndarray, window: int) -> np.ndarray:
    """Per service and period, how much more (or less) than its peers the service follows the
    seasons, from its previous ``window`` observations (causal).

    Peer-relative residuals remove the seasons all services share; a service with a seasonal
    amplitude of its own (a deeper August) keeps ``(a - 1) × swing`` of it. Its slope on the
    peers' swing (ordinary least squares over the window) estimates ``a - 1``; it is shrunk by the
    positive-part James-Stein factor ``max(0, 1 - se² / slope²)``, so that a slope the window
    cannot tell from zero (the base model's services) adjusts nothing. (T, S)."""
    rw = _past_windows(r, window)                                    # (T, S, W)
    sw = _past_windows(np.broadcast_to(swing, r.shape).copy(), window)
    ok = np.isfinite(rw) & np.isfinite(sw)
    n = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(ok, sw, 0.0)
        y = np.where(ok, rw, 0.0)
        xm = x.sum(-1) / n
        ym = y.sum(-1) / n
        dx = np.where(ok, x - xm[..., None], 0.0)
        dy = np.where(ok, y - ym[..., None], 0.0)
        sxx = (dx * dx).sum(-1)
        slope = (dx * dy).sum(-1) / sxx
        resid = np.where(ok, dy - slope[..., None] * dx, 0.0)
        se2 = (resid * resid).sum(-1) / np.maximum(n - 2, 1) / sxx
        shrink = np.clip(1.0 - se2 / slope ** 2, 0.0, 1.0)
    out = slope * shrink
    return np.where(np.isfinite(out) & (n >= 8), out, 0.0)


@dataclasses.dataclass
class Residuals:
    """Standardised, worse-side-oriented residuals of one indicator (months × services)."""
    indicator: str
    months: np.ndarray
    services: np.ndarray
    value: np.ndarray
    z: np.ndarray
    expected: np.ndarray
    r: np.ndarray | None = None          # peer-relative value on the stabilising scale
    var: np.ndarray | None = None        # its sampling (or rounding) variance
    centre: np.ndarray | None = None     # the peers' median on that scale, per period
    inverse: object = None               # back to the indicator's scale
    tail_pool: np.ndarray | None = None  # worse-side residuals of every month with half the
                                         # history or more (tested or not), for reading tails


def pooled_lag1(z: np.ndarray, min_pairs: int = 200, clip: float = 4.0) -> np.ndarray:
    """Lag-1 autocorrelation of z pooled over services, from months before each month (causal).

    Returns one coefficient per row, clipped to [0, 0.9]; 0 until ``min_pairs`` pairs exist.
    """
    zc = np.clip(z, -clip, clip)
    ok = np.isfinite(zc[1:]) & np.isfinite(zc[:-1])
    a = np.where(ok, zc[1:], 0.0)
    b = np.where(ok, zc[:-1], 0.0)
    sab = np.concatenate([[0.0], np.cumsum((a * b).sum(axis=1))])
    saa = np.concatenate([[0.0], np.cumsum((a * a).sum(axis=1))])
    sbb = np.concatenate([[0.0], np.cumsum((b * b).sum(axis=1))])
    n = np.concatenate([[0.0], np.cumsum(ok.sum(axis=1))])
    # row t may use pairs (s-1, s) with s <= t-1, i.e. the cumulative sums up to index t-1
    idx = np.arange(z.shape[0]) - 1
    idx = np.clip(idx, 0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = sab[idx] / np.sqrt(saa[idx] * sbb[idx])
    phi = np.where(n[idx] >= min_pairs, phi, 0.0)
    return np.clip(np.nan_to_num(phi), 0.0, 0.9)


def cusum_scale(zc: np.ndarray, k: float, arl: float = 200.0, min_runs: int = 2000,
                grid: np.ndarray = np.round(np.arange(1.0, 3.01, 0.05), 2)) -> np.ndarray:
    """Per month, how much wider the residuals run than the CUSUM's model assumes (>= 1).

    A CUSUM's threshold is calibrated for iid N(0, 1) residuals; real series wander (their own
    level moves), have heavy tails and more than Poisson variation. Their effect on the
    CUSUM is measured where drifts on the worse side cannot contaminate it: on the *better*
    side, the same CUSUM on ``-z`` must signal no more often than its nominal rate ``1 / arl``
    at the threshold of that ARL. The smallest scale of ``z`` for which the better-side signal
    rate over earlier months (pooled over services, causal) holds that rate is returned; 1
    until ``min_runs`` service-months are available.
    """
    h_m = calibrate_h(k, arl)
    T, S = zc.shape
    rates = np.empty((grid.size, T))
    observed = np.cumsum(np.isfinite(zc).sum(axis=1))
    # the scales side by side as columns of one CUSUM (its loop runs over time only), in chunks
    # of about two million cells so that a national panel of 18,000 services stays small
    per_chunk = max(1, 2_000_000 // max(1, T * S))
    for lo in range(0, grid.size, per_chunk):
        scales = grid[lo:lo + per_chunk]
        stacked = (-zc[:, None, :] / scales[None, :, None]).reshape(T, scales.size * S)
        fired = resetting_signals(stacked, k, h_m).reshape(T, scales.size, S).sum(axis=2)
        rates[lo:lo + scales.size] = np.cumsum(fired, axis=0).T
    out = np.ones(T)
    for t in range(1, T):
        n = observed[t - 1]
        if n < min_runs:
            continue
        ok = rates[:, t - 1] / n <= 1.0 / arl
        out[t] = grid[np.argmax(ok)] if ok.any() else grid[-1]
    return out


def resolution(a: np.ndarray) -> np.ndarray:
    """Reporting resolution of each number: the largest power of ten, or half of one, it is a
    multiple of (small services report their FTE to the half).

    ``0.6`` -> 0.1, ``18`` -> 1, ``5718.3`` -> 0.1, ``3.5`` -> 0.5; NaN for zeros and missing
    values. A series' resolution is the finest seen so far (:func:`quantisation_variance`):
    ``3.5, 4.0, 4.5`` is reported to the half, ``3.5, 3.7`` to one decimal.
    """
    a = np.abs(np.asarray(a, dtype=float))
    out = np.full(a.shape, np.nan)
    todo = np.isfinite(a) & (a > 0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for k in range(4, -7, -1):
            for step in (10.0 ** k, 5 * 10.0 ** (k - 1)):
                q = a / step
                hit = todo & (np.abs(q - np.rint(q)) <= 1e-9 * np.maximum(1.0, q))
                out[hit] = step
                todo &= ~hit
    return out


def quantisation_variance(*columns: np.ndarray) -> np.ndarray:
    """Variance on the log scale added by rounding the reported numbers (Sheppard: step² / 12).

    Each column is a months × services matrix of numbers that enter the value multiplicatively
    (the value itself, or the numerator and denominator of a ratio). A column's step is the
    finest resolution seen so far in that service (an expanding minimum over months, so the
    estimate only uses what was known at the time): 0.5 physician FTE reported to one decimal
    is uncertain by ±0.05, i.e. 10 % on the log scale.
    """
    total = 0.0
    for col in columns:
        col = np.asarray(col, dtype=float)
        step = np.fmin.accumulate(resolution(col), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(np.isfinite(step) & (col > 0), step / col, 0.0)
        total = total + rel ** 2 / 12.0
    return total


def expected_counts(counts: np.ndarray, peer_expected: np.ndarray, window: int) -> np.ndarray:
    """The count each service-month should have, from the service's own past (causal).

    ``peer_expected`` is what the month's peer rate gives for the service's size; the
    service's standardised ratio over the previous ``window`` observations (its counts over
    what its peers' rates would have given) scales it. A ratio of sums is a mean, which the
    months with 0 or 1 event of a small service do not bias as a median would; the
    Gamma(0.5, 0.5) prior (half an event at the peers' rate) keeps a service without events
    finite.
    """
    seen = np.isfinite(peer_expected)
    obs_sum = _nan_window_stat(np.where(seen, counts, np.nan), window, np.nansum)
    base_sum = _nan_window_stat(np.where(seen, peer_expected, np.nan), window, np.nansum)
    return (obs_sum + 0.5) / (base_sum + 0.5) * peer_expected


def expected_counts_seasonal(counts: np.ndarray, peer_expected: np.ndarray, beta: np.ndarray,
                             swing: np.ndarray, window: int) -> np.ndarray:
    """:func:`expected_counts` with the service's own seasonal amplitude: the peers' expected
    counts of the window and of the month are scaled by ``exp(beta × swing)`` (log scale), with
    the month's ``beta``, before the standardised ratio is taken."""
    seen = np.isfinite(peer_expected)
    sw = _past_windows(np.broadcast_to(swing, counts.shape).copy(), window)
    base_w = _past_windows(np.where(seen, peer_expected, np.nan), window) * np.exp(beta[..., None] * sw)
    obs_w = _past_windows(np.where(seen, counts, np.nan), window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        obs_sum = np.nansum(obs_w, axis=-1)
        base_sum = np.nansum(base_w, axis=-1)
    now = peer_expected * np.exp(beta * swing)
    return (obs_sum + 0.5) / (base_sum + 0.5) * now


def pooled_overdispersion(counts: np.ndarray, expected: np.ndarray, clip: float = 4.0) -> np.ndarray:
    """Per month, the negative-binomial extra variance of the counts, pooled over services from
    earlier months (causal): ``Var(O) = E + alpha E^2``, by the NB2 moment estimator (Cameron &
    Trivedi 2013, §3.2) ``alpha = sum((O - E)^2 - O) / sum(E^2)``, with each Pearson residual
    winsorised at ``clip`` so that a few real surges do not pass for noise. 0 when the counts
    vary no more than Poisson."""
    ok = np.isfinite(counts) & np.isfinite(expected) & (expected > 0)
    e = np.where(ok, expected, 0.0)
    o = np.where(ok, counts, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = np.where(ok, (o - e) / np.sqrt(np.maximum(e, 1e-9)), 0.0)
    d = np.clip(pearson, -clip, clip) * np.sqrt(e)          # winsorised O - E
    num = np.concatenate([[0.0], np.cumsum((d ** 2 - np.where(ok, o, 0.0)).sum(axis=1))])
    den = np.concatenate([[0.0], np.cumsum((e ** 2).sum(axis=1))])
    idx = np.arange(counts.shape[0])           # row t uses rows < t
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = num[idx] / den[idx]
    return np.clip(np.nan_to_num(alpha), 0.0, None)


def count_z(observed: np.ndarray, expected: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """Normal score of an observed count under a negative binomial with mean ``expected`` and
    multiplicative extra variance ``extra`` (Gamma mixing: size = 1 / extra), by the mid-p
    distribution function: z = Phi^-1(P(X < O) + P(X = O) / 2)."""
    from scipy.stats import nbinom, norm

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        m = np.clip(np.asarray(expected, dtype=float), 1e-3, None)
        size = 1.0 / np.clip(np.asarray(extra, dtype=float), 1e-6, None)
        prob = size / (size + m)
        o = np.asarray(observed, dtype=float)
        ok = np.isfinite(o) & np.isfinite(m) & np.isfinite(size)
        oo = np.where(ok, np.rint(o), 0.0)
        below = np.where(oo > 0, nbinom.cdf(oo - 1, size, prob), 0.0)
        mid = below + 0.5 * nbinom.pmf(oo, size, prob)
        z = norm.ppf(np.clip(mid, 1e-300, 1 - 1e-16))
    return np.where(ok, z, np.nan)


def tail_factor(z: np.ndarray, q: float = 0.005, min_values: int = 100, min_beyond: int = 5,
                current: bool = False) -> np.ndarray:
    """Per month, how much heavier than normal the residuals' tails were in earlier months
    (with ``current``, up to and including the month itself: its peers' residuals are known
    when it is scored).

    Measured on the *better* side (z < 0), which drifts on the worse side do not contaminate:
    ``c_t = max(1, |quantile_q'(z_past)| / Phi^-1(1 - q'))``, pooled over services, causal, with
    ``q' = max(q, min_beyond / n)``: while few residuals exist (the first tested quarters or
    years) the tail is read at a less extreme quantile that at least ``min_beyond`` of them
    pass, rather than assumed normal. 1 until ``min_values`` residuals exist.
    """
    from scipy.stats import norm

    out = np.ones(z.shape[0])
    past = []
    n = 0
    for t in range(z.shape[0]):
        row = z[t][np.isfinite(z[t])]
        if current and row.size:
            past.append(row)
            n += row.size
        if n >= min_values:
            pooled = np.concatenate(past)
            qq = max(q, min_beyond / n)
            out[t] = max(1.0, -float(np.quantile(pooled, qq)) / norm.isf(qq))
        if not current and row.size:
            past.append(row)
            n += row.size
    return out


def gpd_lmoments(excess: np.ndarray) -> tuple[float, float]:
    """Shape and scale of a generalised Pareto law (location 0) from the first two sample
    L-moments of its exceedances (``scipy.stats.lmoment``): ``l1 / l2 = 2 - shape`` and
    ``scale = l1 (1 - shape)`` (Hosking & Wallis 1987, whose probability weighted moments
    these are; below about 500 exceedances they are more reliable than maximum likelihood,
    and closed-form)."""
    from scipy.stats import lmoment

    l1, l2 = lmoment(np.asarray(excess, dtype=float), order=[1, 2])
    ratio = l1 / l2
    return float(2.0 - ratio), float(l1 * (ratio - 1.0))


def tail_threshold(z: np.ndarray, z0: float, exceed_fraction: float = 0.05,
                   min_exceedances: int = 20, growth: float = 1.25) -> np.ndarray:
    """Per period, the residual beyond which a single value is as rare as ``z0`` is under a
    normal law, read from how heavy the residuals' tails really are (peaks over threshold).

    The better side (``-z``), which drifts on the worse side do not contaminate, is pooled over
    services and periods up to the period itself (its peers' better side is known when it is
    scored). Its top ``exceed_fraction`` beyond their lower bound ``u`` follow a generalised
    Pareto law (Pickands-Balkema-de Haan), fitted by L-moments (:func:`gpd_lmoments`); the
    threshold is its quantile at the tail probability ``P(N(0,1) > z0)``
    (``scipy.stats.genpareto``), never below ``z0``. A normal tail fits a negative shape and
    keeps ``z0``; a Student tail's positive shape raises it as far as that tail reaches. The law
    is fitted again each time the pool has grown by ``growth`` (a handful of fits over a
    panel); before ``min_exceedances`` exceedances exist, :func:`tail_factor` scales ``z0``."""
    from scipy.stats import genpareto, norm

    p = float(norm.sf(z0)) / exceed_fraction
    finite = np.isfinite(z)
    sizes = np.cumsum(finite.sum(axis=1))
    fitted = np.full(z.shape[0], np.nan)
    fitted_at, threshold = 0, np.nan
    for t in range(z.shape[0]):
        n = int(sizes[t])
        if n * exceed_fraction >= min_exceedances and n >= growth * fitted_at:
            pool = -z[:t + 1][finite[:t + 1]]
            top = max(1, int(n * exceed_fraction))
            part = np.partition(pool, n - top - 1)
            u = float(part[n - top - 1])                    # the largest value below the top
            shape, scale = gpd_lmoments(part[n - top:] - u)
            threshold, fitted_at = u + float(genpareto.isf(p, shape, 0.0, scale)), n
        fitted[t] = threshold
    out = np.fmax(fitted, z0)
    # the scaled z0 stands in the periods without a fitted law, the first ones: the tail factor is
    # causal, so it is computed on the rows up to the last of them only
    unfitted = np.flatnonzero(~np.isfinite(fitted))
    if unfitted.size:
        upto = unfitted[-1] + 1
        out[unfitted] = (z0 * tail_factor(z[:upto], current=True))[unfitted]
    return out


def residuals(panel: Panel, code: str, cfg: TemporalConfig) -> Residuals | None:
    ind = CATALOGUE[code]
    obs = panel.indicator(code)
    if obs.empty:
        return None
    value = wide_last(obs, "value")
    months, services = value.index.to_numpy(), value.columns.to_numpy()
    v = value.to_numpy(dtype=float)

    def grid(column: str) -> np.ndarray:
        return wide_last(obs, column).reindex(index=value.index, columns=value.columns).to_numpy(dtype=float)

    num, den = grid("numerator"), grid("denominator")
    if ind.kind == "proportion":
        n = np.where(np.isfinite(den) & (den > 0), den, np.nan)
        y = np.arcsin(np.sqrt(np.clip(v, 0, 1)))
        var = np.where(np.isfinite(n), 1.0 / (4.0 * n), 0.0)
        floor = cfg.floor_proportion
    elif ind.kind == "rate":
        counts = np.where(np.isfinite(num), num, v * den / ind.scale)
        workers = np.where(np.isfinite(den) & (den > 0), den, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log((counts + 0.5) / workers)
            var = np.where(np.isfinite(counts), 1.0 / (counts + 0.5), 0.0)
        floor = cfg.floor_log
        offset = None
        if np.isfinite(y).sum() < 0.5 * np.isfinite(v).sum():
            # Values sent without counts: log(value + c), c = half the smallest positive value
            # (so that months with zero events stay on the scale), no sampling variance.
            positive = v[np.isfinite(v) & (v > 0)]
            offset = 0.5 * positive.min() if positive.size else 1.0
            with np.errstate(invalid="ignore"):
                y = np.log(v + offset)
            var = np.zeros_like(y)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(v > 0, np.log(v), np.nan)
        # no sampling variance, but reported numbers are rounded: for a ratio, the rounding of
        # its numerator and denominator (e.g. workers / physician FTE to one decimal)
        # (numerator and denominator sent empty add nothing)
        var = quantisation_variance(v, num, den)
        floor = cfg.floor_log
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmedian(y, axis=1, keepdims=True)
    r = y - centre
    var = np.where(np.isfinite(r), var, np.nan)
    # windows count observations: convert the month settings with the series' own spacing
    step = max(1, int(np.median(np.diff(months)))) if len(months) > 1 else 1
    window = max(4, -(-cfg.window_months // step))
    min_history = max(4, -(-cfg.min_history_months // step))
    # a seasonal amplitude of the service's own, when its history allows (monthly, quarterly)
    r_own = r
    # (monthly series only: over the 8 quarters of a quarterly window the slope is too uncertain,
    # which measured panels confirmed: quarterly F1 fell with it)
    season = 12 if step == 1 else 0
    seasonal = np.zeros_like(r)
    if cfg.own_seasonality and season:
        swing = national_season(centre, season)
        beta = own_seasonal_amplitude(r, swing, window)              # (T, S)
        seasonal = beta * np.nan_to_num(swing)
        adj_w = _past_windows(r, window) - beta[..., None] * _past_windows(
            np.broadcast_to(np.nan_to_num(swing), r.shape).copy(), window)
        mu, mad, count = window_median_mad(adj_w)
        r_own = r - seasonal
    else:
        mu, mad, count = past_median_mad(r, window)
    past_var = nanmedian_last(_past_windows(var, window))
    own = np.maximum(0.0, mad ** 2 - np.nan_to_num(past_var))
    # A spread estimated on 12-24 months is noisy: shrink it towards the typical spread of
    # all services that month (empirical Bayes, prior weight ``shrink_weight`` observations).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pooled = np.nanmedian(np.where(count >= min_history, own, np.nan), axis=1, keepdims=True)
    pooled = np.where(np.isfinite(pooled), pooled, own)
    own = (count * own + cfg.shrink_weight * pooled) / (count + cfg.shrink_weight)
    # expected value: this month's peer centre plus the service's own baseline, back-transformed
    y_exp = centre + seasonal + mu
    if ind.kind == "rate" and offset is None:
        # counts: exact negative-binomial score against the count the baseline expects
        peer_expected = np.where(np.isfinite(var), np.exp(centre) * workers, np.nan)
        if cfg.own_seasonality and season:
            expected_count = expected_counts_seasonal(counts, peer_expected, beta, np.nan_to_num(swing), window)
        else:
            expected_count = expected_counts(counts, peer_expected, window)
        # counts vary more than Poisson from month to month: at least the peers' pooled extra
        # variance, measured on the months each service was already tested in
        tested = np.where(count >= min_history, expected_count, np.nan)
        alpha = pooled_overdispersion(counts, tested)[:, None]
        z = np.where(np.isfinite(var), count_z(counts, expected_count, np.maximum(own, alpha) + floor ** 2),
                     np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = expected_count / workers * ind.scale
    else:
        z = (r_own - mu) / np.sqrt(own + np.nan_to_num(var) + floor ** 2)
        if ind.kind == "proportion":
            expected = np.sin(np.clip(y_exp, 0, np.pi / 2)) ** 2
        elif ind.kind == "rate":
            expected = np.exp(y_exp) - offset
        else:
            expected = np.exp(y_exp)
    sign = -1.0 if ind.worse == "lower" else 1.0
    tail_pool = np.where(count >= max(4, min_history // 2), sign * z, np.nan)
    z[count < min_history] = np.nan
    zw = sign * z
    if ind.kind == "proportion":
        def inverse(t):
            return np.sin(np.clip(t, 0, np.pi / 2)) ** 2
    elif ind.kind == "rate":
        def inverse(t, k=(0.0 if offset is None else offset)):
            return np.exp(t) * (ind.scale if offset is None else 1.0) - k
    else:
        inverse = np.exp
    return Residuals(code, months, services, v, zw, expected, r, var, centre, inverse, tail_pool)


def yearly_change_z(res: Residuals, worse: str, depth: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A service's change from its previous periods against its peers' changes, for series too
    short for a baseline of their own (a yearly survey has a handful of points).

    With ``d = r_t - mean(r_(t-k..t-1))`` over the (up to ``depth``) previous periods
    (peer-relative, variance-stabilised), each period's peers give the typical change (median)
    and its spread (1.4826 MAD) net of sampling variance (``tau²``); a service's change is
    scored as ``(d - median) / sqrt(tau² + v_t + mean(v_prev) / k)``, worse side positive. A
    mean of three years is a steadier reference than the last year alone (its noise variance
    is a third), and the peers' spread of ``d`` measures how far services really wander from
    it. Returns (z, expected value, k). Uses periods up to t only: causal."""
    r, var = res.r, np.nan_to_num(res.var)
    prev_w = _past_windows(r, depth)                        # (T, S, depth), previous periods
    pvar_w = _past_windows(np.where(np.isfinite(r), var, np.nan), depth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        k = np.isfinite(prev_w).sum(axis=-1)
        ref = np.nanmean(prev_w, axis=-1)
        ref_var = np.nansum(pvar_w, axis=-1) / np.maximum(k, 1) ** 2
    d = r - ref
    vsum = np.where(k > 0, var + ref_var, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(d, axis=1, keepdims=True)
        mad = MAD_SCALE * np.nanmedian(np.abs(d - med), axis=1, keepdims=True)
        tau2 = np.maximum(0.0, mad ** 2 - np.nanmedian(np.where(np.isfinite(d), vsum, np.nan), axis=1,
                                                       keepdims=True))
    z = (d - med) / np.sqrt(tau2 + vsum)
    sign = -1.0 if worse == "lower" else 1.0
    expected = res.inverse(res.centre + ref + med)
    return sign * z, expected, k


class TemporalDrift(Detector):
    name = "temporal_cusum"
    version = "2"
    category = "drift"
    family = "temporal"
    Config = TemporalConfig

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        cfg: TemporalConfig = self.config
        months = np.asarray(months)
        if months.size == 0:
            return empty_findings()
        h, spike_z = cfg.h, cfg.spike_z
        out = []
        for code in cfg.indicators:
            res = residuals(panel, code, cfg)
            if res is None:
                continue
            # Autocorrelated residuals inflate a CUSUM's false alarms: scale them to their
            # long-run standard deviation, sqrt((1 + phi) / (1 - phi)), phi pooled over services.
            phi = pooled_lag1(res.z)
            zc = res.z * np.sqrt((1 - phi) / (1 + phi))[:, None]
            # robust CUSUM (Lucas & Crosier 1982): one heavy-tailed month moves the statistic by
            # at most ``cusum_clip - k``; a single large month is the spike test's to judge
            zc = np.clip(zc, -cfg.cusum_clip, cfg.cusum_clip)
            # and to how wide they really run, measured on the better side (cusum_scale)
            zc = zc / cusum_scale(zc, cfg.k)[:, None]
            cs = upper_cusum(zc, cfg.k, h, reset=False)
            stat = np.asarray(cs.statistic)
            cusum_hit = np.asarray(cs.signal) & (zc > cfg.k)
            # the spike test is calibrated for the tails the residuals really have
            limit = tail_threshold(res.tail_pool, spike_z)
            spike_hit = res.z > limit[:, None]
            hit = (cusum_hit | spike_hit) & np.isin(res.months, months)[:, None]
            # hysteresis: the month is still on the worse side beyond the CUSUM's allowance while
            # its statistic has not come back to zero
            still = (stat > 0) & (zc > cfg.k) & ~hit & np.isin(res.months, months)[:, None]
            ts, ss = np.nonzero(still)
            if ts.size:
                out.append(self.sustaining(pd.DataFrame({"service_id": res.services[ss],
                                                         "month_index": res.months[ts].astype(int)}), code))
            if panel.period_step(code) >= 12:
                # a yearly survey has too few points for a baseline of the service's own: its
                # change from its previous years is judged against its peers' changes
                cz, cexp, ck = yearly_change_z(res, CATALOGUE[code].worse)
                # the change is judged against the same year's peers: their better-side tail that
                # year counts too (the first change has no earlier one)
                c_now = tail_factor(cz, current=True)
                change = (cz > (spike_z * c_now)[:, None]) & ~hit & np.isin(res.months, months)[:, None]
                out.append(self._change_findings(res, code, cz, cexp, ck, change))
            ti, si = np.nonzero(hit)
            if ti.size == 0:
                continue
            run_start = np.asarray(cs.run_start)
            zv = res.z[ti, si]
            sv = stat[ti, si]
            starts = [int(res.months[rs]) if rs >= 0 else int(res.months[t]) for rs, t in zip(run_start[ti, si], ti)]
            f = pd.DataFrame({
                "service_id": res.services[si], "indicator": code, "month_index": res.months[ti].astype(int),
                "value": res.value[ti, si], "expected": res.expected[ti, si],
                "score": np.maximum(zv, sv / h * spike_z / 1.5),
                "z": zv, "cusum": sv, "start": starts, "is_spike": spike_hit[ti, si],
                "is_cusum": cusum_hit[ti, si],
            })
            f["severity"] = np.where((f["z"] > cfg.high_z) | (f["cusum"] > 2 * h), "high", "medium")
            kind = panel.period_kind(code)
            f["explanation"] = [
                (f"{label(code)} : {fmt_value(code, v)} {period_phrase_fr(m, kind)} contre {fmt_value(code, e)} attendu "
                 f"au vu de son historique et de l'évolution des pairs ; "
                 + (f"dérive persistante {since_fr(st, kind)} (CUSUM {fr_number(c, 1)} > seuil {fr_number(h, 1)})"
                    if ic else f"écart brutal de {fr_number(z, 1)} écarts-types"))
                for v, m, e, st, c, ic, z in zip(f["value"], f["month_index"], f["expected"], f["start"],
                                                 f["cusum"], f["is_cusum"], f["z"])]
            f["evidence"] = [{"z": round(float(z), 3), "cusum": round(float(c), 3), "h": round(h, 3),
                              "k": cfg.k, "arl0": cfg.arl0, "drift_start": int(st), "phi": round(float(p), 3),
                              "z_limit": round(float(lim), 3)}
                             for z, c, st, p, lim in zip(f["z"], f["cusum"], f["start"], phi[ti], limit[ti])]
            out.append(self.findings(f))
        return pd.concat(out, ignore_index=True) if out else empty_findings()

    def _change_findings(self, res: Residuals, code: str, cz: np.ndarray, cexp: np.ndarray, ck: np.ndarray,
                         change: np.ndarray) -> pd.DataFrame:
        ti, si = np.nonzero(change)
        if ti.size == 0:
            return empty_findings()
        cfg: TemporalConfig = self.config
        f = pd.DataFrame({"service_id": res.services[si], "indicator": code,
                          "month_index": res.months[ti].astype(int), "value": res.value[ti, si],
                          "expected": cexp[ti, si], "score": cz[ti, si], "z": cz[ti, si]})
        f["severity"] = np.where(f["z"] > cfg.high_z, "high", "medium")
        # the reference periods, oldest first: the k previous periods the service reported
        refs = [[(int(res.months[u]), float(res.value[u, j])) for u in range(t - 1, -1, -1)
                 if np.isfinite(res.r[u, j])][:int(ck[t, j])][::-1] for t, j in zip(ti, si)]
        f["explanation"] = [
            f"{label(code)} : {fmt_value(code, v)} {period_phrase_fr(m, 'Y')} contre {fmt_value(code, e)} attendu "
            f"au vu de {_reference_fr(code, ref)} et de l'évolution des pairs ; changement de {fr_number(z, 1)} écarts-types"
            for v, m, e, ref, z in zip(f["value"], f["month_index"], f["expected"], refs, f["z"])]
        f["evidence"] = [{"z": round(float(z), 3), "method": "yearly_change",
                          "previous": float(ref[-1][1]), "reference": {period_code(p, "Y"): x for p, x in ref}}
                         for z, ref in zip(f["z"], refs)]
        return self.findings(f.drop(columns=["z"]))


def _reference_fr(code: str, ref: list[tuple[int, float]]) -> str:
    """« sa valeur de 2023 (18,6 ETP) », « ses valeurs de 2021 à 2023 (18,2 ETP, 18,6 ETP, 18,4 ETP) »."""
    shown = ", ".join(fmt_value(code, x) for _, x in ref)
    if len(ref) == 1:
        return f"sa valeur {period_of_fr(ref[0][0], 'Y')} ({shown})"
    return f"ses valeurs {period_of_fr(ref[0][0], 'Y')} à {period_name_fr(ref[-1][0], 'Y')} ({shown})"
