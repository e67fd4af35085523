"""Attainment of CPOM objectives: pure computation, no database.

A year's achieved value is the indicator over that year: the declared yearly value when the
service sent one; otherwise its months (or quarters) combined: counts summed for proportions
(Σ numerators / Σ denominators), rates per N workers *in the period* summed over the year
(Σ numerators / mean denominator, scaled to twelve months when the year is incomplete),
and the mean of the values for levels and ratios. An objective is met when the achieved value
is not on the indicator's worse side of the target (catalogue « worse when »): at most the
target when higher is worse, at least the target when lower is worse.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.vocabulary.catalogue import CATALOGUE
from monitor.vocabulary.periods import PERIOD_STEP

YEARLY_COLUMNS = ["service_id", "indicator", "year", "value", "months", "complete"]
ATTAINMENT_COLUMNS = ["service_id", "indicator", "year", "target", "label", "value", "complete", "met",
                      "gap", "previous", "trend"]

TREND_FR = {"better": "en amélioration", "worse": "en dégradation", "stable": "stable", None: "—"}


def yearly_values(obs: pd.DataFrame) -> pd.DataFrame:
    """One value per service, indicator and year from observations (OBS_COLUMNS of the panel)."""
    if obs.empty:
        return pd.DataFrame(columns=YEARLY_COLUMNS)
    o = obs.copy()
    o["year"] = o["month_index"].astype(int) // 12
    o["months"] = o["period_kind"].map(PERIOD_STEP).fillna(1).astype(int)
    key = ["service_id", "indicator", "year"]
    declared = o[o["period_kind"] == "Y"].drop_duplicates(key, keep="last")
    finer = o[o["period_kind"] != "Y"]
    parts = []
    if len(declared):
        parts.append(declared.assign(complete=True)[key + ["value", "months", "complete"]])
    if len(finer):
        g = finer.groupby(key)
        agg = g.agg(mean_value=("value", "mean"), sum_value=("value", "sum"), months=("months", "sum"),
                    num=("numerator", lambda s: s.sum(min_count=1)),
                    den_sum=("denominator", lambda s: s.sum(min_count=1)),
                    den_mean=("denominator", "mean"),
                    counted=("numerator", "count"), n=("value", "size")).reset_index()
        meta = agg["indicator"].map(CATALOGUE)
        kind = meta.map(lambda i: i.kind if i else None)
        scale = meta.map(lambda i: i.scale if i else 1.0).astype(float)
        all_counts = agg["counted"].eq(agg["n"])
        months = agg["months"].clip(upper=12).astype(float)
        prop = scale * agg["num"] / agg["den_sum"].where(agg["den_sum"] > 0)
        rate = scale * agg["num"] / agg["den_mean"].where(agg["den_mean"] > 0) * 12.0 / months
        # a rate « per N workers in the period » over a year adds up its periods
        annual_rate = rate.where(all_counts & rate.notna(), agg["sum_value"] * 12.0 / months)
        value = agg["mean_value"].astype(float)
        value = value.where(~(kind.eq("proportion") & all_counts & prop.notna()), prop)
        value = value.where(~kind.eq("rate"), annual_rate)
        agg["value"] = value
        agg["complete"] = agg["months"] >= 12
        fine = agg[key + ["value", "months", "complete"]]
        if len(declared):
            have = pd.MultiIndex.from_frame(declared[key])
            fine = fine[~pd.MultiIndex.from_frame(fine[key]).isin(have)]
        parts.append(fine)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=YEARLY_COLUMNS)
    out["year"] = out["year"].astype(int)
    return out[YEARLY_COLUMNS].sort_values(key).reset_index(drop=True)


def is_met(value: float, target: float, worse: str) -> bool | None:
    """Whether ``value`` reaches ``target`` given the indicator's worse side (None: no value)."""
    if value is None or not np.isfinite(value):
        return None
    if worse == "higher":
        return bool(value <= target)
    if worse == "lower":
        return bool(value >= target)
    return None


def better_gap(value: float, target: float, worse: str) -> float:
    """Distance to the target, positive on the better side, negative on the worse side."""
    if value is None or not np.isfinite(value):
        return float("nan")
    return float(target - value) if worse == "higher" else float(value - target)


def trend(value: float, previous: float, worse: str, tolerance: float = 0.01) -> str | None:
    """``better``, ``worse`` or ``stable`` (change within ``tolerance`` of the previous value,
    relative) from one year to the next, on the indicator's worse side."""
    if previous is None or value is None or not (np.isfinite(value) and np.isfinite(previous)):
        return None
    change = value - previous
    if abs(change) <= tolerance * max(abs(previous), 1e-9):
        return "stable"
    improved = change < 0 if worse == "higher" else change > 0
    return "better" if improved else "worse"


def attainment(objectives: pd.DataFrame, yearly: pd.DataFrame) -> pd.DataFrame:
    """Each objective (service_id, indicator, year, target, label) with its achieved value,
    ``met`` (True / False / None without data), ``gap`` (positive = better than target) and
    the ``trend`` against the previous year's value."""
    if objectives.empty:
        return pd.DataFrame(columns=ATTAINMENT_COLUMNS)
    key = ["service_id", "indicator", "year"]
    y = yearly[key + ["value", "complete"]] if len(yearly) else pd.DataFrame(columns=key + ["value", "complete"])
    prev = y[key + ["value"]].rename(columns={"value": "previous"}).assign(year=lambda d: d["year"] + 1)
    out = objectives.merge(y, on=key, how="left").merge(prev, on=key, how="left")
    worse = out["indicator"].map(lambda c: CATALOGUE[c].worse if c in CATALOGUE else "higher")
    vals = out["value"].astype(float)
    targets = out["target"].astype(float)
    prevs = out["previous"].astype(float)
    out["met"] = [is_met(v, t, w) for v, t, w in zip(vals, targets, worse)]
    out["gap"] = [better_gap(v, t, w) for v, t, w in zip(vals, targets, worse)]
    out["trend"] = [trend(v, p, w) for v, p, w in zip(vals, prevs, worse)]
    out["complete"] = out["complete"].astype(object).where(out["complete"].notna(), None)
    return out[ATTAINMENT_COLUMNS].sort_values(key).reset_index(drop=True)
