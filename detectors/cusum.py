"""One-sided upper tabular CUSUM for standardised residuals, with ARL calibration.

The temporal detector turns each service's monthly indicator series into standardised
residuals ``z_t`` (approximately N(0, 1) while the service is "in control", oriented so
that a *positive* residual is on the worse side) and monitors them with Page's (1954)
one-sided upper tabular CUSUM

    S_0 = 0,        S_t = max(0, S_{t-1} + z_t - k),        signal at the first t with S_t > h.

``k`` is the reference value (allowance; k = delta/2 is optimal for detecting a mean
shift of delta standard deviations) and ``h`` the decision interval.  ``h`` is chosen so
that the in-control *average run length* (ARL, expected number of periods until the
first signal when z_t ~ iid N(0, 1)) equals a target ``arl0``.

Contents
--------
``cusum_arl(k, h, shift=0.0, sides="one", method="integral")``
    ARL of the zero-start normal CUSUM when z_t ~ iid N(shift, 1):

    * ``method="integral"`` (default): Nyström / Gauss-Legendre solution of the ARL
      integral equation, including the atom of S at 0, exactly as in Knoth's
      ``spc::xcusum.arl`` (R package spc; C routine ``xc1_iglarl``).  Reproduces spc
      to ~1e-13 relative.
    * ``method="markov"``: Brook & Evans (1972) Markov-chain approximation with
      ``n_states`` states, for cross-checking (error O(1/n_states^2): about 2e-5
      relative with the default 400 states for k = 0.5, h = 4..5).

``calibrate_h(k, arl0, sides="one")``
    The h whose in-control ARL equals ``arl0`` (Brent root finding, ``lru_cache``-d).

``upper_cusum(z, k, h, reset=True)``
    The CUSUM recursion vectorised across services (time on axis 0), NaN-aware,
    returning a frozen :class:`CusumResult` (statistic, signal, run_start, missing).

Threshold choice for the project
--------------------------------
The in-control ARL target is a parameter of the *caller*; none is hard-coded here.  For
monthly series a natural choice is ``arl0 = 120`` months, i.e. on average one false
signal per service per 10 years (with ~180 services: ~1.5 false signals per month
nationally); ``arl0 = 240`` halves that.  With k = 0.5 (tuned to a 1-sigma shift),
one-sided: ``calibrate_h(0.5, 120) = 3.01890...`` and ``calibrate_h(0.5, 240) = 3.67681...``
(see the module tests).  The residuals are only approximately normal and independent;
the ARL is exact for the idealised model only.

References
----------
* Page, E. S. (1954). Continuous inspection schemes. Biometrika 41(1/2), 100-115.
* Brook, D. & Evans, D. A. (1972). An approach to the probability distribution of
  CUSUM run length. Biometrika 59(3), 539-549.
* Lucas, J. M. & Crosier, R. B. (1982). Fast initial response for CUSUM quality-control
  schemes. Technometrics 24(3), 199-205 (two-sided ARL relation).
* Siegmund, D. (1985). Sequential Analysis. Springer (two-sided ARL relation).
* Knoth, S. spc: Statistical Process Control -- Calculation of ARL and Other Control
  Chart Performance Measures. R package (``xcusum.arl``; version 0.6.7 was used for
  the project's reference values).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

__all__ = [
    "CusumResult",
    "calibrate_h",
    "cusum_arl",
    "upper_cusum",
]

_SIDES = ("one", "two")
_METHODS = ("integral", "markov")


# ---------------------------------------------------------------------------------------
# Average run length
# ---------------------------------------------------------------------------------------


def _default_nodes(h: float) -> int:
    """Gauss-Legendre nodes for the integral method.

    The kernel phi(y + k - x - shift) has unit width, so the quadrature error is governed
    by the number of nodes per unit of h.  spc uses 30 nodes; 30 already gives ~1e-13 for
    h <= 5 and we add nodes for larger h (10 per unit of h, capped).
    """
    return int(min(1000, max(30, math.ceil(10.0 * h))))


def _arl_h0(k: float, shift: float) -> float:
    """ARL for h = 0: signal at the first z_t > k, a geometric run length."""
    p = stats.norm.sf(k - shift)
    return math.inf if p == 0.0 else 1.0 / p


def _arl_one_sided_integral(k: float, h: float, shift: float, n_nodes: int) -> float:
    r"""Zero-start upper CUSUM ARL by the Nyström method (as ``spc::xc1_iglarl``).

    Let L(x) be the ARL when the chart starts at S_0 = x in [0, h].  Conditioning on the
    first observation z ~ N(mu, 1): S_1 = max(0, x + z - k) is 0 with probability
    Phi(k - x - mu) (an atom at 0), has density phi(y + k - x - mu) on (0, h], and the
    chart signals if S_1 > h.  Hence the Fredholm equation of the second kind

        L(x) = 1 + Phi(k - x - mu) L(0) + \int_0^h phi(y + k - x - mu) L(y) dy.

    With Gauss-Legendre nodes z_j and weights w_j on [0, h] and the extra unknown
    L(0) (the atom), the collocation system for g = (L(z_1), ..., L(z_N), L(0)) is

        g_i - sum_j w_j phi(k + z_j - z_i - mu) g_j - Phi(k - z_i - mu) g_{N+1} = 1,
        g_{N+1} - sum_j w_j phi(k + z_j - mu) g_j - Phi(k - mu) g_{N+1} = 1,

    and the ARL from the zero start is g_{N+1} = L(0).
    """
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    nodes = 0.5 * h * (x + 1.0)
    weights = 0.5 * h * w
    a = np.empty((n_nodes + 1, n_nodes + 1))
    # rows i < N: collocation at the node z_i
    a[:n_nodes, :n_nodes] = -weights[None, :] * stats.norm.pdf(
        k + nodes[None, :] - nodes[:, None] - shift
    )
    a[:n_nodes, :n_nodes] += np.eye(n_nodes)
    a[:n_nodes, n_nodes] = -stats.norm.cdf(k - nodes - shift)
    # last row: collocation at x = 0 (the atom)
    a[n_nodes, :n_nodes] = -weights * stats.norm.pdf(k + nodes - shift)
    a[n_nodes, n_nodes] = stats.norm.sf(k - shift)  # 1 - Phi(k - mu)
    g = np.linalg.solve(a, np.ones(n_nodes + 1))
    return float(g[n_nodes])


def _arl_one_sided_markov(k: float, h: float, shift: float, n_states: int) -> float:
    """Zero-start upper CUSUM ARL by the Brook & Evans (1972) Markov chain.

    The continuation region [0, h] is split into ``m = n_states`` cells of width
    w = 2h / (2m - 1): cell 0 = [0, w/2] (it contains the atom at 0, represented by 0)
    and cell i = ((i - 1/2) w, (i + 1/2) w] represented by its midpoint c_i = i w,
    i = 1..m-1; the top cell ends at (m - 1/2) w = h.  Transition probabilities from the
    representative c_i:

        P[i, 0] = Phi(w/2 - c_i + k - mu),
        P[i, j] = Phi((j + 1/2) w - c_i + k - mu) - Phi((j - 1/2) w - c_i + k - mu),

    and the remaining mass is absorption (signal).  The ARL vector is
    (I - P)^{-1} 1 and the zero-start ARL is its first element.
    """
    m = int(n_states)
    w = 2.0 * h / (2 * m - 1)
    c = w * np.arange(m)
    upper = (np.arange(m) + 0.5) * w  # upper edges of the cells
    cdf_upper = stats.norm.cdf(upper[None, :] - c[:, None] + k - shift)
    p = np.empty((m, m))
    p[:, 0] = cdf_upper[:, 0]
    p[:, 1:] = cdf_upper[:, 1:] - cdf_upper[:, :-1]
    arl = np.linalg.solve(np.eye(m) - p, np.ones(m))
    return float(arl[0])


def cusum_arl(
    k: float,
    h: float,
    shift: float = 0.0,
    sides: str = "one",
    method: str = "integral",
    *,
    n_nodes: int | None = None,
    n_states: int = 400,
) -> float:
    r"""Average run length of the zero-start normal tabular CUSUM.

    Scheme (Page 1954): S_0 = 0, S_t = max(0, S_{t-1} + z_t - k), signal when S_t > h,
    with z_t iid N(shift, 1).  The ARL is E[min{t : S_t > h}].

    Parameters
    ----------
    k : float
        Reference value (allowance), in standard deviations.
    h : float
        Decision interval, h >= 0.
    shift : float
        Mean of z_t in standard deviations (0 = in control).  For ``sides="one"`` a
        positive shift is towards the monitored (worse) side.
    sides : {"one", "two"}
        ``"one"``: upper CUSUM only.  ``"two"``: symmetric two-sided scheme (upper chart
        on z_t and lower chart S^-_t = max(0, S^-_{t-1} - z_t - k), same k and h,
        signal when either exceeds h), combined by the Siegmund / Lucas-Crosier relation

            1 / ARL_two = 1 / ARL_upper(shift) + 1 / ARL_upper(-shift).

        This is exactly what ``spc::xcusum.arl(..., sided="two")`` computes for a zero
        start (its C routine combines four one-sided ARLs, which collapses to the
        relation above when the head start is 0), and it reproduces the reference
        file to ~1e-13.  The relation is exact when the two one-sided charts cannot be
        positive simultaneously, which holds for h <= 2k; for h > 2k (e.g. k = 0.5,
        h = 4) it is the standard, very accurate approximation.  Requires k >= 0.
    method : {"integral", "markov"}
        ``"integral"``: Nyström (Gauss-Legendre collocation) solution of the ARL integral
        equation with the atom at 0, as in Knoth's ``spc::xcusum.arl`` (C routine
        ``xc1_iglarl``).  ``"markov"``: Brook & Evans (1972) Markov-chain approximation
        (slower and less accurate; for cross-checking).
    n_nodes : int, optional
        Quadrature nodes for ``"integral"`` (default: max(30, ceil(10 h)), capped at
        1000; spc's default is 30).
    n_states : int
        Number of transient states for ``"markov"`` (default 400).

    Returns
    -------
    float
        The ARL (``math.inf`` if it overflows).

    Notes
    -----
    For h = 0 the run length is geometric: ARL = 1 / (1 - Phi(k - shift)) (one-sided).
    See the private helpers ``_arl_one_sided_integral`` and ``_arl_one_sided_markov``
    for the equations.

    Examples
    --------
    >>> round(cusum_arl(0.5, 4.0), 4)
    335.3676
    >>> round(cusum_arl(0.5, 4.0, shift=1.0), 4)
    8.3832
    """
    k = float(k)
    h = float(h)
    shift = float(shift)
    if sides not in _SIDES:
        raise ValueError(f"sides must be one of {_SIDES}, got {sides!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not (math.isfinite(k) and math.isfinite(shift)):
        raise ValueError("k and shift must be finite")
    if not (math.isfinite(h) and h >= 0.0):
        raise ValueError(f"h must be finite and >= 0, got {h}")
    if sides == "two" and k < 0.0:
        raise ValueError("the two-sided relation needs k >= 0")

    def one_sided(mu: float) -> float:
        if h == 0.0:
            return _arl_h0(k, mu)
        if method == "integral":
            n = _default_nodes(h) if n_nodes is None else int(n_nodes)
            if n < 2:
                raise ValueError("n_nodes must be >= 2")
            arl = _arl_one_sided_integral(k, h, mu, n)
        else:
            if int(n_states) < 2:
                raise ValueError("n_states must be >= 2")
            arl = _arl_one_sided_markov(k, h, mu, int(n_states))
        if not math.isfinite(arl) or arl <= 0.0:
            # singular / overflowing system: the chart practically never signals
            return math.inf
        return arl

    arl_upper = one_sided(shift)
    if sides == "one":
        return arl_upper
    arl_lower = one_sided(-shift)
    return 1.0 / (1.0 / arl_upper + 1.0 / arl_lower)


# ---------------------------------------------------------------------------------------
# Threshold calibration
# ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _calibrate_h_cached(k: float, arl0: float, sides: str) -> float:
    arl_at_0 = cusum_arl(k, 0.0, sides=sides)
    if not arl0 > arl_at_0:
        raise ValueError(
            f"arl0={arl0} is not attainable: with k={k} even h=0 gives an in-control "
            f"ARL of {arl_at_0:.6g} ({sides}-sided)"
        )

    def f(h: float) -> float:
        return math.log(cusum_arl(k, h, sides=sides)) - math.log(arl0)

    # start from a narrow bracket around Siegmund's approximation, which is within a few
    # hundredths of the exact h for one-sided CUSUMs (each ARL evaluation solves the integral
    # equation: fewer of them make a run's calibration several times cheaper)
    guess = _siegmund_h(k, arl0) if sides == "one" else None
    if guess is not None:
        lo, hi = max(0.0, guess - 0.1), guess + 0.1
        if (lo == 0.0 or f(lo) < 0.0) and f(hi) > 0.0:
            return float(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-12))
    lo, hi = 0.0, 1.0
    while f(hi) < 0.0:
        lo, hi = hi, 2.0 * hi
        if hi > 100.0:  # ARL ~ exp(2 (k + 1.166) h): far beyond any sensible arl0
            raise ValueError(f"arl0={arl0} too large to calibrate")
    return float(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-12))


def _siegmund_h(k: float, arl0: float) -> float | None:
    """h from Siegmund's (1985) approximation of a one-sided CUSUM's in-control ARL,
    ``(exp(2 k b) - 2 k b - 1) / (2 k²)`` with ``b = h + 1.166``; None where it does not apply."""
    if not (k > 0 and math.isfinite(arl0) and arl0 > 1):
        return None

    def g(h: float) -> float:
        b = 2.0 * k * (h + 1.166)
        return (math.expm1(b) - b) / (2.0 * k * k) - arl0

    if g(0.0) >= 0.0 or g(60.0) <= 0.0:
        return None
    return float(optimize.brentq(g, 0.0, 60.0, xtol=1e-6))


def calibrate_h(k: float, arl0: float, sides: str = "one") -> float:
    """Decision interval h such that the in-control ARL equals ``arl0``.

    Solves ``cusum_arl(k, h, shift=0, sides=sides) = arl0`` for h with Brent's method
    on log ARL (the ARL is continuous and strictly increasing in h), using the
    Gauss-Legendre integral-equation ARL (spc-accurate).  Results are cached
    (``functools.lru_cache``) per (k, arl0, sides), so calling it for every run of the
    detector is free.

    The target ``arl0`` is the caller's choice.  For monthly data, ``arl0 = 120`` means
    one false signal per service per 10 years on average (k = 0.5 one-sided gives
    h = 3.01890...); ``arl0 = 240`` gives h = 3.67681....

    Parameters
    ----------
    k : float
        Reference value (allowance), in standard deviations.
    arl0 : float
        Target in-control ARL, in periods.  Must exceed the h = 0 ARL
        1 / (1 - Phi(k)) (one-sided) or half that (two-sided).
    sides : {"one", "two"}
        See :func:`cusum_arl`.

    Returns
    -------
    float
        h, accurate to ~1e-10 absolute.

    Raises
    ------
    ValueError
        If ``arl0`` cannot be attained with h >= 0 or needs h > 100.
    """
    k = float(k)
    arl0 = float(arl0)
    if sides not in _SIDES:
        raise ValueError(f"sides must be one of {_SIDES}, got {sides!r}")
    if not math.isfinite(k) or not math.isfinite(arl0) or arl0 <= 1.0:
        raise ValueError("k must be finite and arl0 finite and > 1")
    return _calibrate_h_cached(k, arl0, sides)


calibrate_h.cache_info = _calibrate_h_cached.cache_info  # type: ignore[attr-defined]
calibrate_h.cache_clear = _calibrate_h_cached.cache_clear  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# The CUSUM recursion
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CusumResult:
    """Output of :func:`upper_cusum`; every array field has the shape/type of the input.

    Attributes
    ----------
    statistic : float array / DataFrame / Series
        S_t, the CUSUM value after period t (before any reset: at a signalling period it
        is the value that exceeded h).  At a missing period it is the value carried
        over from the previous period (the state is unchanged).
    signal : bool array
        True where period t is observed and S_t > h.  Always False at missing periods.
    run_start : int array
        Position (0-based row index along the time axis, also for DataFrames) of the
        first period of the current excursion of S above 0, i.e. (last period with
        S = 0) + 1, or the first period if S has been positive since the start; -1 where
        S_t = 0.  At a signal it dates the probable onset of the drift.
    missing : bool array
        True where z_t was NaN (period not observed).
    k, h : float
        The parameters used.
    reset : bool
        Whether the statistic restarted at 0 after each signal.
    index : pandas.Index or None
        The time index of a pandas input (None for numpy input); used by
        :meth:`run_start_labels`.
    """

    statistic: Any
    signal: Any
    run_start: Any
    missing: Any
    k: float
    h: float
    reset: bool
    index: pd.Index | None = None

    def run_start_labels(self) -> Any:
        """``run_start`` translated to time-index labels (pandas input only).

        Returns an object of the same type as ``run_start`` holding the label of the
        start period, missing (NaN/NaT) where ``run_start == -1``.
        """
        if self.index is None:
            raise TypeError("run_start_labels() needs a pandas input with a time index")
        rs = np.asarray(self.run_start)
        labels = self.index.take(np.where(rs >= 0, rs, 0).ravel())
        out = pd.Series(labels).where(rs.ravel() >= 0)
        values = out.to_numpy().reshape(rs.shape)
        if isinstance(self.run_start, pd.DataFrame):
            return pd.DataFrame(
                values, index=self.run_start.index, columns=self.run_start.columns
            )
        return pd.Series(values, index=self.run_start.index, name=self.run_start.name)


def _to_2d(z: Any) -> tuple[np.ndarray, Any]:
    """Float64 2-D view of z (time on axis 0) and a function restoring the input type."""
    if isinstance(z, pd.DataFrame):
        arr = z.to_numpy(dtype=np.float64, na_value=np.nan)
        index, columns = z.index, z.columns

        def wrap(a: np.ndarray) -> pd.DataFrame:
            return pd.DataFrame(a, index=index, columns=columns, copy=False)

        return arr, wrap
    if isinstance(z, pd.Series):
        arr = z.to_numpy(dtype=np.float64, na_value=np.nan)[:, None]
        index, name = z.index, z.name

        def wrap(a: np.ndarray) -> pd.Series:
            return pd.Series(a[:, 0], index=index, name=name, copy=False)

        return arr, wrap
    arr = np.asarray(z, dtype=np.float64)
    if arr.ndim == 1:

        def wrap(a: np.ndarray) -> np.ndarray:
            out = a[:, 0]
            out.flags.writeable = False
            return out

        return arr[:, None], wrap
    if arr.ndim == 2:

        def wrap(a: np.ndarray) -> np.ndarray:
            a.flags.writeable = False
            return a

        return arr, wrap
    raise ValueError(f"z must be 1-D or 2-D (time on axis 0), got {arr.ndim}-D")


def upper_cusum(z: Any, k: float, h: float, reset: bool = True) -> CusumResult:
    """Upper tabular CUSUM (Page 1954) of standardised residuals, vectorised over series.

    For each column (service) independently, starting from S_{-1} = 0:

        S_t = max(0, S_{t-1} + z_t - k)      if z_t is observed,
        S_t = S_{t-1}                         if z_t is NaN (missing period),

    and period t signals when z_t is observed and S_t > h.  A missing month neither adds
    evidence nor resets the statistic.  The loop runs over time only; each step is a
    handful of numpy operations across all services (18,000 services x 60 months take a
    a few tens of milliseconds).

    Parameters
    ----------
    z : array-like, shape (n_periods, n_services) or (n_periods,), or pandas DataFrame /
        Series with time as rows.  NaN (or pandas NA) marks a missing period.  Must be
        otherwise finite.
    k : float
        Reference value (allowance), e.g. 0.5 to target a 1-sigma shift.
    h : float
        Decision interval, h >= 0 (``math.inf`` disables signalling); calibrate it with
        :func:`calibrate_h`.
    reset : bool
        ``True`` (standard practice, and what :func:`cusum_arl` assumes for the run
        length *between* signals): after a signal at t the state restarts at 0 for
        t + 1, so a persisting shift produces a new signal every few periods (about
        ``cusum_arl(k, h, shift)``) and each signal's ``run_start`` dates a fresh
        excursion.  ``False``: the statistic keeps accumulating after a signal, so
        ``signal`` stays True for as long as S_t > h ("alert persists" logic) and
        ``run_start`` keeps pointing at the onset of the whole excursion.

    Returns
    -------
    CusumResult
        Frozen result with ``statistic``, ``signal``, ``run_start`` and ``missing``,
        each of the same type and shape as ``z`` (numpy outputs are read-only).
    """
    k = float(k)
    h = float(h)
    if not math.isfinite(k):
        raise ValueError(f"k must be finite, got {k}")
    if math.isnan(h) or h < 0.0:
        raise ValueError(f"h must be >= 0, got {h}")
    arr, wrap = _to_2d(z)
    missing = np.isnan(arr)
    if np.isinf(arr).any():
        raise ValueError("z contains infinite values")

    n_periods, n_series = arr.shape
    statistic = np.empty((n_periods, n_series), dtype=np.float64)
    signal = np.zeros((n_periods, n_series), dtype=bool)
    run_start = np.empty((n_periods, n_series), dtype=np.int64)

    s = np.zeros(n_series)  # state S_{t-1}
    start = np.full(n_series, -1, dtype=np.int64)  # invariant: start == -1 <=> s == 0
    for t in range(n_periods):
        obs = ~missing[t]
        # NaN z gives NaN here and is replaced by the carried state
        s_new = np.where(obs, np.maximum(s + arr[t] - k, 0.0), s)
        positive = s_new > 0.0
        start = np.where(positive, np.where(start < 0, t, start), -1)
        fired = obs & (s_new > h)
        statistic[t] = s_new
        run_start[t] = start
        signal[t] = fired
        if reset:
            s = np.where(fired, 0.0, s_new)
            start = np.where(fired, -1, start)
        else:
            s = s_new

    index = z.index if isinstance(z, (pd.DataFrame, pd.Series)) else None
    return CusumResult(
        statistic=wrap(statistic),
        signal=wrap(signal),
        run_start=wrap(run_start),
        missing=wrap(missing),
        k=k,
        h=h,
        reset=bool(reset),
        index=index,
    )


def resetting_signals(z: np.ndarray, k: float, h: float) -> np.ndarray:
    """For each row of ``z`` (periods × series), which series signal in a resetting upper
    CUSUM: ``upper_cusum(z, k, h, reset=True).signal``, computed in place with nothing else
    kept (the temporal detector's scale study runs 41 CUSUMs over every series). Returns the signals as a
    (periods, series) boolean array."""
    z = np.asarray(z, dtype=float)
    T, n = z.shape
    s = np.zeros(n)
    step = np.empty(n)
    out = np.zeros((T, n), dtype=bool)
    for t in range(T):
        seen = ~np.isnan(z[t])
        np.add(s, z[t], out=step)
        step -= k
        np.maximum(step, 0.0, out=step)
        np.copyto(s, step, where=seen)              # a missing period keeps the statistic
        fired = out[t]
        np.greater(s, h, out=fired)
        fired &= seen
        s[fired] = 0.0
    return out
