"""Funnel plots with over-dispersion, after Spiegelhalter (2005) and FunnelPlotR 0.6.0.

A funnel plot compares each unit's indicator (a proportion ``O/n`` or an indirectly
standardised ratio ``O/E``) with a common target, using control limits that narrow
as the unit's size grows. This module reproduces the method of the R package
FunnelPlotR 0.6.0 (Wiltshire), itself built on

* Spiegelhalter D.J. (2005). Funnel plots for comparing institutional performance.
  *Statistics in Medicine* 24:1185-1202.
* Spiegelhalter D.J. (2005). Handling over-dispersion of performance indicators.
  *Quality and Safety in Health Care* 14:347-351.
* NHS Digital, SHMI methodology (log scale, 10 % truncation) and the CQC
  square-root method for standardised ratios.

Method (unit ``i``; numerator ``O_i``, denominator ``n_i`` or expected count ``E_i``)
------------------------------------------------------------------------------------

1. **Transformation** ("transform"), target ``theta0`` and within-unit s.e. ``s_i``:

   =========  ===========================  ================  ==============
   transform  Y_i                          target (Y scale)  s_i
   =========  ===========================  ================  ==============
   arcsine    asin(sqrt(O_i / n_i))        asin(sqrt(p0))    1 / (2 sqrt(n_i))
   log        log(O_i / E_i)  (SHMI)       log(1) = 0        1 / sqrt(E_i)
   sqrt       sqrt(O_i / E_i) (CQC)        sqrt(1) = 1       1 / (2 sqrt(E_i))
   =========  ===========================  ================  ==============

   with ``p0 = sum(O) / sum(n)`` for proportions and ``theta0 = 1`` for ratios.
   Unadjusted z-score: ``z_i = (Y_i - target) / s_i``. A ratio with ``O_i = 0`` has
   ``z_i = -inf`` on the log scale (ranked lowest, truncated away in a large panel).

2. **Trimming** of the z-scores before estimating over-dispersion, with ``q = trim``:

   * *winsorise* (Spiegelhalter): ``lz``, ``uz`` = the ``q`` and ``1 - q`` quantiles of
     the z-scores with R's default (type 7) definition; z-scores below ``lz``
     (above ``uz``) are replaced by ``lz`` (``uz``). All units are kept.
   * *truncate* (NHS Digital SHMI): ``k = 1/q``, ``r_i`` = rank of ``z_i`` (average
     ranks for ties), ``g_i = floor(r_i k / (m + 1))``; unit kept iff
     ``0 < g_i < k - 1`` (with ``m = 300``, ``q = 0.1``: ranks 31-270 kept).

3. **Over-dispersion** over the ``m`` kept units, ``zW`` being the trimmed z-scores:

   * multiplicative factor ``phi = sum(zW_i^2) / m``;
   * additive between-unit variance (DerSimonian-Laird moment estimator),
     ``w_i = 1 / s_i^2``: ``tau2 = max(0, (m phi - (m - 1)) / (sum w - sum w^2 / sum w))``.

   As in FunnelPlotR, the adjustment is only applied when ``phi > 1``; otherwise
   the unadjusted limits are used and ``tau2`` is reported as 0 (``phi`` is always
   reported as estimated). Units whose trimmed z-score is still infinite (a zero
   count on the log scale that survived trimming in a tiny panel) are left out of
   the estimation instead of making ``phi`` infinite (FunnelPlotR would return an
   infinite ``phi``).

4. **Control limits**, 95 % (``z = Phi^-1(0.975)``) and 99.8 % (``z = Phi^-1(0.999)``),
   computed on the transformed scale, clipped to its domain and mapped back to the
   indicator scale (proportion or O/E ratio):

   * additive (random effects): ``target +/- z sqrt(s_i^2 + tau2)``;
   * multiplicative: ``target +/- z sqrt(phi) s_i``;
   * none (unadjusted): arcsine ``target +/- z s_i`` for proportions; exact Poisson
     limits for ratios, ``chi2_{a/2}(2 mu) / (2E)`` and ``chi2_{1-a/2}(2(mu + 1)) / (2E)``
     with ``mu = theta0 E`` (FunnelPlotR's unadjusted SR limits).

   The back-transformations are ``sin^2`` (arcsine; the transformed limit is first
   clipped to ``[0, pi/2]``, so proportion limits stay in ``[0, 1]`` and are monotone
   in ``n``), ``exp`` (log) and the square (sqrt; the transformed limit is clipped
   at 0 first). For the CQC method the limits are squared back to the ratio scale:
   FunnelPlotR 0.6.0 does not square them (its issue #33) and so flags the wrong
   units; this module does.

   Adjusted z-scores: additive ``(Y_i - target) / sqrt(s_i^2 + tau2)``;
   multiplicative ``z_i / sqrt(phi)``.

5. **Outliers**: a unit is outside a pair of limits iff ``value < lower`` or
   ``value > upper`` (a value on a limit counts as inside).

Differences from FunnelPlotR, all deliberate: exact normal quantiles instead of the
rounded 1.959964 / 3.090232 (limits differ by < 1e-7 relative); expected counts are
not rounded to 2 decimals (FunnelPlotR's ``SHMI_rounding``); grouped units keep the
order of first appearance (FunnelPlotR sorts them); CQC limits squared back.

The module also provides :func:`funnel_limits` (limit curves for any denominators,
for drawing) and :func:`phe_proportion_limits` (the PHE/OHID inverted-Wilson-score
limits without over-dispersion, as in PHEindicatormethods).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

__all__ = [
    "Z95",
    "Z998",
    "FunnelResult",
    "funnel",
    "funnel_limits",
    "robust_tau2",
    "phe_proportion_limits",
    "outside_limits",
    "winsorise",
    "truncate",
    "quantile_type7",
]

#: Two-sided 95 % and 99.8 % normal quantiles (exact; FunnelPlotR rounds them).
Z95: float = float(special.ndtri(0.975))
Z998: float = float(special.ndtri(0.999))

KINDS = ("proportion", "ratio")
TRANSFORMS = {"proportion": ("arcsine",), "ratio": ("log", "sqrt")}
DEFAULT_TRANSFORM = {"proportion": "arcsine", "ratio": "log"}
DEFAULT_TRIM_METHOD = {"arcsine": "winsorise", "log": "truncate", "sqrt": "winsorise"}
OVERDISPERSION = ("none", "multiplicative", "additive")
TRIM_METHODS = ("winsorise", "truncate")
_TRIM_ALIASES = {"winsorise": "winsorise", "winsorize": "winsorise", "truncate": "truncate"}

LIMIT_COLUMNS = ("lower_95", "upper_95", "lower_998", "upper_998")
TABLE_COLUMNS = (
    "numerator", "denominator", "value", "y", "s", "z", "z_trimmed", "trimmed",
    "z_adjusted", *LIMIT_COLUMNS, "outlier_95", "outlier_998",
)
_LEVELS = (("95", Z95, 0.05), ("998", Z998, 0.002))


# --------------------------------------------------------------------------- scales

def _to_scale(transform: str, value: np.ndarray | float) -> np.ndarray:
    """Transform indicator values (proportion or O/E) to the funnel's scale."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if transform == "arcsine":
            return np.arcsin(np.sqrt(value))
        if transform == "log":
            return np.log(value)
        return np.sqrt(value)


def _from_scale(transform: str, t: np.ndarray) -> np.ndarray:
    """Map transformed-scale limits back to the indicator scale, clipping to the domain."""
    if transform == "arcsine":
        return np.sin(np.clip(t, 0.0, np.pi / 2)) ** 2
    if transform == "log":
        return np.exp(t)
    return np.clip(t, 0.0, None) ** 2


def _within_se(transform: str, denominator: np.ndarray) -> np.ndarray:
    """Within-unit standard error on the transformed scale: 1/(2 sqrt n) or 1/sqrt E."""
    with np.errstate(divide="ignore"):
        if transform == "log":
            return 1.0 / np.sqrt(denominator)
        return 0.5 / np.sqrt(denominator)


# --------------------------------------------------------------------------- trimming

def quantile_type7(x: np.ndarray, probs: Any) -> np.ndarray:
    """Quantiles with R's default definition (type 7), computed exactly as R does.

    ``index = 1 + (n - 1) p``; ``lo, hi = floor(index), ceil(index)``; the quantile is
    ``x[lo]`` or, when ``index > lo`` and ``x[hi] != x[lo]``,
    ``(1 - h) x[lo] + h x[hi]`` with ``h = index - lo`` (1-based order statistics).
    Infinite values are handled like R (a ``-inf`` order statistic gives ``-inf``).
    """
    xs = np.sort(np.asarray(x, dtype=float))
    p = np.atleast_1d(np.asarray(probs, dtype=float))
    index = 1.0 + (xs.size - 1) * p
    lo = np.floor(index).astype(int)
    hi = np.ceil(index).astype(int)
    qs = xs[lo - 1]
    upper = xs[hi - 1]
    h = index - lo
    interp = (index > lo) & (upper != qs)
    with np.errstate(invalid="ignore"):
        qs = np.where(interp, (1.0 - h) * qs + h * upper, qs)
    return qs


def winsorise(z: np.ndarray, trim: float) -> tuple[np.ndarray, np.ndarray]:
    """Winsorise z-scores at their ``trim`` and ``1 - trim`` type-7 quantiles.

    Returns ``(z_winsorised, changed)``, where ``changed`` marks the z-scores that were
    pulled in (strictly beyond a quantile). FunnelPlotR's ``winsorised`` column also
    flags a z-score exactly equal to a quantile; the values are the same.
    """
    z = np.asarray(z, dtype=float)
    if trim == 0 or z.size == 0:
        return z.copy(), np.zeros(z.size, dtype=bool)
    lz, uz = quantile_type7(z, [trim, 1.0 - trim])
    return np.clip(z, lz, uz), (z < lz) | (z > uz)


def truncate(z: np.ndarray, trim: float) -> tuple[np.ndarray, np.ndarray]:
    """Truncate z-scores with the NHS Digital SHMI rank rule.

    ``k = 1/trim``; ``g_i = floor(rank_i k / (m + 1))`` with average ranks for ties
    (``-inf`` ranks first); a unit is kept iff ``0 < g_i < k - 1``. Returns
    ``(z_truncated, dropped)`` where dropped units have ``NaN``.
    """
    z = np.asarray(z, dtype=float)
    if trim == 0 or z.size == 0:
        return z.copy(), np.zeros(z.size, dtype=bool)
    k = 1.0 / trim
    rank = stats.rankdata(z, method="average")
    group = np.floor(rank * k / (z.size + 1))
    dropped = ~((group > 0) & (group < k - 1))
    return np.where(dropped, np.nan, z), dropped


def _trim(z: np.ndarray, trim: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    return winsorise(z, trim) if method == "winsorise" else truncate(z, trim)


# --------------------------------------------------------------------------- dispersion

def _phi(z_trimmed: np.ndarray, used: np.ndarray) -> float:
    """Multiplicative over-dispersion factor ``phi = mean(zW^2)`` over the used units."""
    m = int(used.sum())
    return float(np.sum(z_trimmed[used] ** 2) / m) if m else float("nan")


def _tau2(phi: float, s: np.ndarray, used: np.ndarray) -> float:
    """DerSimonian-Laird between-unit variance; 0 unless ``phi > 1`` (FunnelPlotR rule)."""
    m = int(used.sum())
    if not (np.isfinite(phi) and phi > 1.0) or m < 2:
        return 0.0
    w = 1.0 / s[used] ** 2
    sw = w.sum()
    denominator = sw - np.sum(w**2) / sw
    if not denominator > 0:
        return 0.0
    return float(max(0.0, (m * phi - (m - 1)) / denominator))


def robust_tau2(y: Any, s: Any, target_transformed: float, tau2: float = 0.0,
                iterations: int = 50, rtol: float = 1e-7) -> float:
    """The smallest between-unit variance, at least ``tau2``, that gives the adjusted z-scores
    ``(y - target) / sqrt(s² + tau²)`` a unit robust spread (1.4826 × MAD about their median).

    The DerSimonian-Laird ``tau²`` of :func:`funnel` is estimated from winsorised z-scores: when
    the units really differ (large services, whose within-unit error is small), winsorising 10 %
    of each tail shrinks ``phi`` and the adjusted z-scores still run wider than N(0, 1) (a robust
    spread of 1.3 to 1.5 measured on generated panels, in-control). Raising ``tau²`` until their
    median absolute deviation is that of a standard normal is a Paule-Mandel-type moment
    estimator with the mean square replaced by the MAD, so that true outliers do not inflate it.
    Never lowers ``tau2``; Brent's method on a monotone bracket.
    """
    y = np.asarray(y, dtype=float)
    s = np.asarray(s, dtype=float)
    ok = np.isfinite(y) & np.isfinite(s) & (s > 0)
    d = y[ok] - float(target_transformed)
    s2 = s[ok] ** 2
    lo = max(0.0, float(tau2)) if np.isfinite(tau2) else 0.0
    if d.size < 3:
        return lo

    def spread(t2: np.ndarray) -> np.ndarray:
        z = d / np.sqrt(s2 + np.asarray(t2, dtype=float)[:, None])
        return 1.4826 * np.median(np.abs(z - np.median(z, axis=1, keepdims=True)), axis=1)

    if spread([lo])[0] <= 1.0:
        return lo
    # bracket: geometric steps around the deviations' own robust variance, evaluated at once
    mad_d = 1.4826 * float(np.median(np.abs(d - np.median(d))))
    unit = mad_d ** 2 if mad_d > 0 else float(np.mean(d ** 2)) or 1e-12
    steps = lo + unit * 4.0 ** np.arange(-14, 7)
    fine = ~(spread(steps) > 1.0)
    if not fine.any():
        return lo
    i = int(np.argmax(fine))
    lo, hi = (lo if i == 0 else float(steps[i - 1])), float(steps[i])
    if hi - lo <= rtol * hi:
        return float(hi)
    # then Brent's method on the bracket (about ten evaluations; a spread is two medians, and
    # a national funnel of 18,000 services makes each one count)
    from scipy.optimize import brentq

    return float(brentq(lambda t2: spread([t2])[0] - 1.0, lo, hi, xtol=1e-15, rtol=rtol, maxiter=iterations))


# --------------------------------------------------------------------------- limits

def _limit_arrays(
    denominator: np.ndarray, target: float, transform: str, adjustment: str,
    phi: float, tau2: float,
) -> dict[str, np.ndarray]:
    """The four limits (indicator scale) for positive denominators."""
    if adjustment == "none" and transform in ("log", "sqrt"):
        return _poisson_limits(denominator, target)
    s = _within_se(transform, denominator)
    if adjustment == "additive":
        sd = np.sqrt(s**2 + tau2)
    elif adjustment == "multiplicative":
        sd = np.sqrt(phi) * s
    else:
        sd = s
    t0 = float(_to_scale(transform, target))
    out = {}
    for level, z, _ in _LEVELS:
        out[f"lower_{level}"] = _from_scale(transform, t0 - z * sd)
        out[f"upper_{level}"] = _from_scale(transform, t0 + z * sd)
    return out


def _poisson_limits(expected: np.ndarray, target: float) -> dict[str, np.ndarray]:
    """Exact Poisson limits for O/E given ``O ~ Poisson(target E)`` (FunnelPlotR, unadjusted SR).

    ``lower = chi2_{a/2}(2 mu) / (2E)``, ``upper = chi2_{1-a/2}(2 (mu + 1)) / (2E)``,
    ``mu = target E``; ``chi2_p(2 a) / 2`` is computed as ``gammaincinv(a, p)``.
    """
    mu = target * expected
    out = {}
    for level, _, alpha in _LEVELS:
        out[f"lower_{level}"] = special.gammaincinv(mu, alpha / 2) / expected
        out[f"upper_{level}"] = special.gammaincinv(mu + 1.0, 1.0 - alpha / 2) / expected
    return out


def outside_limits(value: Any, lower: Any, upper: Any) -> np.ndarray:
    """FunnelPlotR's outlier rule: ``value < lower or value > upper`` (limits inclusive).

    Missing values or limits give ``False``.
    """
    value, lower, upper = (np.asarray(a, dtype=float) for a in (value, lower, upper))
    with np.errstate(invalid="ignore"):
        return (value < lower) | (value > upper)


# --------------------------------------------------------------------------- inputs

def _as_vector(x: Any, name: str) -> tuple[np.ndarray, pd.Index | None]:
    """Convert a list, numpy array or pandas Series to a 1-D float array (+ Series index)."""
    index = x.index if isinstance(x, pd.Series) else None
    try:
        if isinstance(x, (pd.Series, pd.Index)):
            arr = pd.to_numeric(x, errors="raise").to_numpy(dtype=float, na_value=np.nan)
        else:
            try:
                arr = np.asarray(x, dtype=float)
            except (TypeError, ValueError):
                arr = pd.to_numeric(pd.Series(list(x)), errors="raise").to_numpy(
                    dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must contain numbers (or missing values): {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got {arr.ndim} dimension(s)")
    return arr, index


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(map(repr, allowed))}")


def _resolve_options(kind: str, transform: str | None, overdispersion: str,
                     trim: float | None = None, trim_method: str | None = None
                     ) -> tuple[str, str | None]:
    """Validate the options; return the effective (transform, trim_method)."""
    _check_choice("kind", kind, KINDS)
    transform = DEFAULT_TRANSFORM[kind] if transform is None else transform
    _check_choice("transform", transform, ("arcsine", "log", "sqrt"))
    if transform not in TRANSFORMS[kind]:
        raise ValueError(f"transform {transform!r} does not apply to kind={kind!r}: "
                         f"expected one of {', '.join(map(repr, TRANSFORMS[kind]))}")
    _check_choice("overdispersion", overdispersion, OVERDISPERSION)
    if trim is not None:
        if not (isinstance(trim, (int, float, np.number)) and 0 <= float(trim) < 0.5):
            raise ValueError(f"trim must be a number in [0, 0.5), got {trim!r}")
    if trim_method is None:
        trim_method = DEFAULT_TRIM_METHOD[transform]
    elif trim_method in _TRIM_ALIASES:
        trim_method = _TRIM_ALIASES[trim_method]
    else:
        _check_choice("trim_method", trim_method, TRIM_METHODS)
    return transform, trim_method


def _check_counts(numerator: np.ndarray, denominator: np.ndarray, kind: str) -> None:
    """Raise ValueError naming the first broken rule on the raw counts."""
    den_name = "denominator" if kind == "proportion" else "denominator (expected count)"
    for arr, name in ((numerator, "numerator"), (denominator, den_name)):
        if np.isinf(arr).any():
            raise ValueError(f"{name} must be finite (or missing), found an infinite value "
                             f"at position {int(np.flatnonzero(np.isinf(arr))[0])}")
        with np.errstate(invalid="ignore"):
            bad = arr < 0
        if bad.any():
            raise ValueError(f"{name} must not be negative (counts), found {arr[bad][0]:g} "
                             f"at position {int(np.flatnonzero(bad)[0])}")
    with np.errstate(invalid="ignore"):
        zero_den = (denominator == 0) & (numerator > 0)
        too_big = numerator > denominator
    if zero_den.any():
        i = int(np.flatnonzero(zero_den)[0])
        raise ValueError(f"zero {den_name} with a positive numerator ({numerator[i]:g}) "
                         f"at position {i}: the indicator is undefined")
    if kind == "proportion" and too_big.any():
        i = int(np.flatnonzero(too_big)[0])
        raise ValueError(f"numerator must not exceed denominator for a proportion: "
                         f"{numerator[i]:g} > {denominator[i]:g} at position {i}")


def _aggregate(numerator: np.ndarray, denominator: np.ndarray, groups: Any
               ) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Sum numerators and denominators within group labels (order of first appearance).

    Rows with a missing numerator or denominator are left out of their group's sums; a
    group without any complete row gets missing sums.
    """
    labels = groups.to_numpy() if isinstance(groups, pd.Series) else groups
    if np.ndim(labels) != 1:
        raise ValueError("groups must be one-dimensional")
    if len(labels) != numerator.size:
        raise ValueError(f"length mismatch: groups has {len(labels)} values, "
                         f"numerator has {numerator.size}")
    codes, uniques = pd.factorize(np.asarray(labels, dtype=object), use_na_sentinel=True)
    if (codes < 0).any():
        raise ValueError(f"groups must not contain missing labels "
                         f"(position {int(np.flatnonzero(codes < 0)[0])})")
    complete = np.isfinite(numerator) & np.isfinite(denominator)
    k = len(uniques)
    num = np.bincount(codes, weights=np.where(complete, numerator, 0.0), minlength=k)
    den = np.bincount(codes, weights=np.where(complete, denominator, 0.0), minlength=k)
    has_data = np.bincount(codes, weights=complete.astype(float), minlength=k) > 0
    num[~has_data] = np.nan
    den[~has_data] = np.nan
    return num, den, pd.Index(uniques, name="group")


def _prepare(numerator: Any, denominator: Any, kind: str, groups: Any
             ) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Validated, possibly aggregated counts and the table's index."""
    num, num_index = _as_vector(numerator, "numerator")
    den, den_index = _as_vector(denominator, "denominator")
    if num.size != den.size:
        raise ValueError(f"length mismatch: numerator has {num.size} values, "
                         f"denominator has {den.size}")
    if num_index is not None and den_index is not None and not num_index.equals(den_index):
        raise ValueError("numerator and denominator are Series with different indexes")
    _check_counts(num, den, kind)
    if groups is not None:
        return _aggregate(num, den, groups)
    index = num_index if num_index is not None else den_index
    return num, den, (index if index is not None else pd.RangeIndex(num.size))


# --------------------------------------------------------------------------- result

@dataclass(frozen=True, eq=False)
class FunnelResult:
    """Result of :func:`funnel`.

    Attributes
    ----------
    table : DataFrame, one row per unit (per group when ``groups`` was given), in
        input order, with the input's Series index (or the group labels). Columns:
        ``numerator``, ``denominator`` (after aggregation), ``value`` (O/n or O/E),
        ``y`` (transformed value), ``s`` (within-unit s.e., transformed scale), ``z``
        (unadjusted z-score), ``z_trimmed`` (winsorised z, or NaN when truncated),
        ``trimmed`` (z pulled in by winsorisation or dropped by truncation),
        ``z_adjusted`` (z-score under the applied adjustment), ``lower_95``,
        ``upper_95``, ``lower_998``, ``upper_998`` (indicator scale),
        ``outlier_95``, ``outlier_998`` (bool). Units without usable data (missing
        numerator or denominator, or 0/0) have NaN statistics and False flags.
    target : target on the indicator scale (``sum O / sum n``, or 1 for ratios).
    target_transformed : the target on the transformed scale.
    phi : multiplicative over-dispersion factor as estimated (even when <= 1).
    tau2 : additive between-unit variance (0 when ``phi <= 1``).
    adjustment : the adjustment actually applied to limits and ``z_adjusted``:
        ``overdispersion``, or ``"none"`` when ``phi <= 1``.
    n_units : units with usable data; n_used : units entering phi and tau2.
    """

    table: pd.DataFrame
    target: float
    target_transformed: float
    phi: float
    tau2: float
    kind: str
    transform: str
    overdispersion: str
    adjustment: str
    trim: float
    trim_method: str
    n_units: int
    n_used: int

    @property
    def adjusted(self) -> bool:
        """True when over-dispersion-adjusted limits were used."""
        return self.adjustment != "none"

    def limits(self, denominators: Any) -> pd.DataFrame:
        """Limit curves of this funnel at arbitrary denominators (for drawing)."""
        return funnel_limits(denominators, self.target, kind=self.kind,
                             transform=self.transform, tau2=self.tau2, phi=self.phi,
                             overdispersion=self.adjustment)

    def summary(self) -> str:
        """A short plain-text description of the funnel and its outliers."""
        t = self.table
        scale = {"arcsine": "arcsine", "log": "log (SHMI)", "sqrt": "square-root (CQC)"}
        missing = len(t) - self.n_units
        lines = [
            f"Funnel plot of a {self.kind} on the {scale[self.transform]} scale: "
            f"{self.n_units} units" + (f" ({missing} without data)" if missing else "")
            + f", target {self.target:.6g}.",
            f"Over-dispersion: phi = {self.phi:.4g} from {self.n_used} units "
            f"({self.trim:.0%} {self.trim_method}d), tau2 = {self.tau2:.4g}; "
            + (f"{self.adjustment} adjustment applied." if self.adjusted
               else "no adjustment applied (unadjusted limits)."),
        ]
        for level, label in (("95", "95%"), ("998", "99.8%")):
            out = t[f"outlier_{level}"].to_numpy(dtype=bool)
            high = int((out & (t["value"] > t[f"upper_{level}"]).to_numpy()).sum())
            lines.append(f"Outside the {label} limits: {int(out.sum())} units "
                         f"({high} high, {int(out.sum()) - high} low).")
        return "\n".join(lines)


# --------------------------------------------------------------------------- public API

def funnel(
    numerator: Any,
    denominator: Any,
    kind: str = "proportion",
    transform: str | None = None,
    overdispersion: str = "additive",
    trim: float = 0.10,
    trim_method: str | None = None,
    groups: Any = None,
) -> FunnelResult:
    """Funnel-plot statistics, over-dispersion and control limits for a panel of units.

    Parameters
    ----------
    numerator, denominator : list, numpy array or pandas Series of equal length.
        Events ``O`` and cases ``n`` (``kind="proportion"``) or observed ``O`` and
        expected ``E`` counts (``kind="ratio"``). Missing values are allowed: such
        units (and 0/0 units) keep their row with NaN statistics and False flags. A
        Series' index is kept on the table.
    kind : ``"proportion"`` (target ``sum O / sum n``) or ``"ratio"`` (target 1).
    transform : ``None`` for the kind's default (``"arcsine"`` for proportions,
        ``"log"`` for ratios, the SHMI method) or ``"sqrt"`` for ratios (CQC method).
    overdispersion : ``"additive"`` (default; random-effects limits, what FunnelPlotR
        draws), ``"multiplicative"`` or ``"none"``. Adjustments apply only if phi > 1.
    trim : share trimmed at each end of the z-scores before estimating phi (0.10).
    trim_method : ``"winsorise"`` or ``"truncate"``; ``None`` for the transform's
        default (truncation for ``"log"``, winsorisation otherwise).
    groups : optional labels; units with the same label are summed first (numerators
        and denominators), and the table has one row per label, indexed by label in
        order of first appearance.

    Raises
    ------
    ValueError
        Unknown kind/transform/overdispersion/trim method, trim outside [0, 0.5),
        inputs of different lengths or not 1-D or not numeric, infinite or negative
        counts, a numerator above its denominator for a proportion, a zero
        denominator with a positive numerator, fewer than 3 usable units.
    """
    transform, trim_method = _resolve_options(kind, transform, overdispersion, trim, trim_method)
    trim = float(trim)
    num, den, index = _prepare(numerator, denominator, kind, groups)
    usable = np.isfinite(num) & np.isfinite(den) & (den > 0)
    n_units = int(usable.sum())
    if n_units < 3:
        raise ValueError(f"at least 3 units with a numerator and a positive denominator "
                         f"are needed, got {n_units}")
    o, d = num[usable], den[usable]

    target = float(o.sum() / d.sum()) if kind == "proportion" else 1.0
    t0 = float(_to_scale(transform, target))
    value = o / d
    y = _to_scale(transform, value)
    s = _within_se(transform, d)
    with np.errstate(invalid="ignore"):
        z = (y - t0) / s

    z_trimmed, trimmed = _trim(z, trim, trim_method)
    used = np.isfinite(z_trimmed)
    phi = _phi(z_trimmed, used)
    tau2 = _tau2(phi, s, used)
    adjusted = overdispersion != "none" and np.isfinite(phi) and phi > 1.0
    adjustment = overdispersion if adjusted else "none"

    if adjustment == "additive":
        z_adjusted = (y - t0) / np.sqrt(s**2 + tau2)
    elif adjustment == "multiplicative":
        z_adjusted = z / np.sqrt(phi)
    else:
        z_adjusted = z
    limits = _limit_arrays(d, target, transform, adjustment, phi, tau2)

    columns: dict[str, np.ndarray] = {"numerator": num, "denominator": den}
    for name, arr in (("value", value), ("y", y), ("s", s), ("z", z),
                      ("z_trimmed", z_trimmed), ("z_adjusted", z_adjusted), *limits.items()):
        full = np.full(num.size, np.nan)
        full[usable] = arr
        columns[name] = full
    flags = np.zeros(num.size, dtype=bool)
    flags[usable] = trimmed
    columns["trimmed"] = flags
    for level, _, _ in _LEVELS:
        columns[f"outlier_{level}"] = outside_limits(
            columns["value"], columns[f"lower_{level}"], columns[f"upper_{level}"])
    table = pd.DataFrame({c: columns[c] for c in TABLE_COLUMNS}, index=index, copy=False)

    return FunnelResult(
        table=table, target=target, target_transformed=t0, phi=phi, tau2=tau2, kind=kind,
        transform=transform, overdispersion=overdispersion, adjustment=adjustment,
        trim=trim, trim_method=trim_method, n_units=n_units, n_used=int(used.sum()),
    )


def funnel_limits(
    denominators: Any,
    target: float,
    kind: str = "proportion",
    transform: str | None = None,
    tau2: float = 0.0,
    phi: float = 1.0,
    overdispersion: str = "additive",
) -> pd.DataFrame:
    """Funnel limit curves (indicator scale) at arbitrary denominators.

    Uses the formulas of :func:`funnel` (module docstring, step 4): ``tau2`` for
    ``overdispersion="additive"``, ``phi`` for ``"multiplicative"``, neither for
    ``"none"`` (exact Poisson limits for ratios). To redraw a fitted funnel, use
    :meth:`FunnelResult.limits`, which passes the adjustment actually applied.

    Returns a DataFrame with columns ``denominator``, ``lower_95``, ``upper_95``,
    ``lower_998``, ``upper_998`` (index of a Series input kept). Missing or zero
    denominators give NaN limits.
    """
    transform, _ = _resolve_options(kind, transform, overdispersion)
    den, index = _as_vector(denominators, "denominators")
    with np.errstate(invalid="ignore"):
        if (den < 0).any():
            raise ValueError("denominators must not be negative")
    if not np.isfinite(target) or (kind == "proportion" and not 0 <= target <= 1) \
            or (kind == "ratio" and not target > 0):
        raise ValueError(f"target must be in [0, 1] for a proportion and positive for a "
                         f"ratio, got {target!r}")
    if not (np.isfinite(tau2) and tau2 >= 0):
        raise ValueError(f"tau2 must be a non-negative number, got {tau2!r}")
    if not (np.isfinite(phi) and phi > 0):
        raise ValueError(f"phi must be a positive number, got {phi!r}")
    usable = np.isfinite(den) & (den > 0)
    limits = _limit_arrays(den[usable], float(target), transform, overdispersion,
                           float(phi), float(tau2))
    out = {"denominator": den}
    for name, arr in limits.items():
        full = np.full(den.size, np.nan)
        full[usable] = arr
        out[name] = full
    return pd.DataFrame(out, index=index if index is not None else pd.RangeIndex(den.size))


def phe_proportion_limits(denominators: Any, target: float) -> pd.DataFrame:
    """PHE/OHID funnel limits for a proportion (PHEindicatormethods, method "Wilson").

    The lower (upper) limit at population ``n`` is the observed proportion whose
    Wilson score upper (lower) bound equals ``target``. Solving that equation gives
    the score-test limits ``target +/- z sqrt(target (1 - target) / n)``, clipped to
    [0, 1], with ``z = Phi^-1(0.975)`` (95 %, "2s") and ``Phi^-1(0.999)`` (99.8 %,
    "3s"). No over-dispersion adjustment. Same output columns as :func:`funnel_limits`.
    """
    den, index = _as_vector(denominators, "denominators")
    if not (np.isfinite(target) and 0 <= target <= 1):
        raise ValueError(f"target must be a proportion in [0, 1], got {target!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(den > 0, np.sqrt(target * (1 - target) / den), np.nan)
    out = {"denominator": den}
    for level, z, _ in _LEVELS:
        out[f"lower_{level}"] = np.clip(target - z * se, 0.0, 1.0)
        out[f"upper_{level}"] = np.clip(target + z * se, 0.0, 1.0)
    return pd.DataFrame(out, index=index if index is not None else pd.RangeIndex(den.size))
