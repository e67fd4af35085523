"""Confidence intervals of a service's own value, from its counts (statsmodels).

The funnel says whether a value is beyond its peers; the interval says how precisely the
service's own counts pin its value down, which an inspector weighs before asking questions:
61 % of 23 visits is not 61 % of 2,300. statsmodels is the reference implementation:

* proportions: Wilson score interval (``proportion_confint(method="wilson")``), which keeps its
  coverage for small denominators and proportions near 0 or 1, where the normal one does not;
* rates: exact Poisson interval for the count (``confint_poisson(method="exact-c")``,
  Garwood), per worker, times the catalogue scale (‰, per 10,000).

Values sent without counts have no interval (NaN).
"""
from __future__ import annotations

import numpy as np

from monitor.vocabulary.catalogue import CATALOGUE


def value_interval(code: str, numerator, denominator, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the indicator's value for each (numerator, denominator) pair."""
    num = np.atleast_1d(np.asarray(numerator, dtype=float))
    den = np.atleast_1d(np.asarray(denominator, dtype=float))
    lower = np.full(num.shape, np.nan)
    upper = np.full(num.shape, np.nan)
    ind = CATALOGUE[code]
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0) & (num >= 0)
    if ind.kind == "proportion":
        ok &= num <= den
    if not ok.any() or ind.kind not in ("proportion", "rate"):
        return lower, upper
    if ind.kind == "proportion":
        from statsmodels.stats.proportion import proportion_confint

        lo, hi = proportion_confint(num[ok], den[ok], alpha=alpha, method="wilson")
    else:
        from statsmodels.stats.rates import confint_poisson

        lo, hi = confint_poisson(num[ok], den[ok], method="exact-c", alpha=alpha)
        lo, hi = np.asarray(lo) * ind.scale, np.asarray(hi) * ind.scale
    lower[ok], upper[ok] = lo, hi
    return lower, upper
