"""The alert budget, and every statistical threshold derived from it: one place.

An inspector's reading time is the scarce resource (DESIGN.md). Each statistical family (peer,
temporal, multivariate) may spend ``ALERT_BUDGET`` false alerts per 100 services per month:
with ~180 services, about 0.4 false alert a year per family nationally if its model held
exactly. A family that runs ``n`` tests per service and month spends ``ALERT_BUDGET / n`` on
each, so its thresholds follow from the budget and the number of its tests, never from data:

* peer funnels, 9 indicators: one-sided p = 2.2e-5, z > 4.08;
* temporal large-residual test, 11 indicators: z > 4.13; its CUSUM signals once every
  11 × 100 / 0.02 = 55,000 months per series (in-control ARL);
* multivariate, one combined score: p = 2e-4, z > 3.54.

Quarterly and yearly series are tested at the same per-test level: a test every quarter or
year spends less than the budget (a third or a twelfth of it), which on measured panels gave a
better F1 than spending the budget of the months a period covers (README, "Measured").

``tests/test_budget.py`` checks these figures against the code.
"""
from __future__ import annotations

ALERT_BUDGET = 0.02   # false alerts per 100 services per month, per statistical family


def per_test_p(budget_per_100: float, tests_per_service_month: int) -> float:
    """One-sided p-value a test may spend: the budget shared by that many tests."""
    if not budget_per_100 > 0 or tests_per_service_month < 1:
        raise ValueError("the budget must be positive and a family must run at least one test")
    return budget_per_100 / 100.0 / tests_per_service_month


def budget_z(budget_per_100: float, tests_per_service_month: int) -> float:
    """One-sided normal threshold spending ``budget_per_100`` over that many tests."""
    from scipy.stats import norm

    return float(norm.isf(per_test_p(budget_per_100, tests_per_service_month)))


def budget_arl(budget_per_100: float, series_per_service: int) -> float:
    """In-control average run length (periods) of each of a service's monitored series."""
    return 1.0 / per_test_p(budget_per_100, series_per_service)
