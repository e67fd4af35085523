"""Peer detectors: is the service out of its peers' range this month, sizes accounted for?

* Indicators with counts: funnel plots with additive over-dispersion (Spiegelhalter 2005):
  proportions on the arcsine scale; rates as observed against expected counts (expected =
  the national rate of the month × the service's workers) on the square-root scale.
* Indicators without counts: robust z-score of log(value) against the month's peers
  (median / MAD, normal-consistency constant 1.4826).

Only the worse side raises a finding, and only when it persists: the unit must be beyond
``limit_z`` this month and beyond the 99.8 % limit in at least ``persist_count`` of the last
``persist_window`` observed months (a single noisy month is not an alert).

``limit_z`` comes from the alert budget (detectors.budget), not from data: 0.02 false alert
per 100 services per month shared by the nine monitored indicators gives a one-sided p of
2.2e-5 per service, indicator and month, i.e. z > 4.08 on the adjusted scale.
Every month is a cross-section of that month alone, so findings are causal by design.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from monitor.vocabulary.formatting import fmt_value, fr_number, label
from monitor.vocabulary.periods import LAST_PERIODS_FR, period_phrase_fr
from detectors.base import Detector, DetectorConfig, empty_findings, severity_from_score
from detectors.budget import ALERT_BUDGET, budget_z
from detectors.funnel import funnel, funnel_limits, robust_tau2
from detectors.intervals import value_interval
from detectors.panel import Panel, trailing_windows
from monitor.vocabulary.catalogue import CATALOGUE

Z95 = 1.959963984540054
Z998 = 3.090232306167813
MAD_SCALE = 1.4826


@dataclasses.dataclass(frozen=True)
class PeerConfig(DetectorConfig):
    DERIVED = ("limit_z",)
    budget: float = ALERT_BUDGET
    persist_z: float = Z998
    persist_window: int = 3
    persist_count: int = 2
    structural_window: int = 3        # periods averaged by the structural test (1: off)
    overdispersion: str = "additive"
    robust_spread: bool = True        # raise tau² until the adjusted z have unit robust spread
    trim: float = 0.10
    min_units: int = 8
    high_z: float = 5.0
    count_indicators: tuple[str, ...] = tuple(c for c, i in CATALOGUE.items() if i.has_counts)
    robust_indicators: tuple[str, ...] = ("vip_init_median_delay_days", "workers_per_physician_fte")

    @property
    def indicators(self) -> tuple[str, ...]:
        return tuple(self.count_indicators) + tuple(self.robust_indicators)

    @property
    def limit_z(self) -> float:
        """The budget over one test per monitored indicator (9: z > 4.08)."""
        return budget_z(self.budget, len(self.indicators))


COLUMNS = ["service_id", "value", "z", "expected", "lower", "upper", "numerator", "denominator",
           "phi", "tau2", "adjustment", "n_units"]


@dataclasses.dataclass(frozen=True)
class FunnelSpec:
    """How a funnel is drawn for one kind of indicator. The detector fits with it and the
    funnel chart redraws with it (:func:`funnel_curves`): the limits an agent sees are the
    limits that raised the alert."""
    kind: str                         # detectors.funnel kind
    transform: str
    trim_method: str | None = None    # None: the transform's default (arcsine: winsorise)


FUNNEL_SPECS = {
    # proportions on the arcsine scale (Spiegelhalter 2005)
    "proportion": FunnelSpec("proportion", "arcsine"),
    # rates: observed against expected count at the month's national rate, square-root scale (CQC)
    "rate": FunnelSpec("ratio", "sqrt", "winsorise"),
}


def _funnel_month(sid, value, num, den, kind: str, scale: float, cfg: PeerConfig) -> dict | None:
    """z (worse-side sign applied later), expected value and limits for one cross-section."""
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0) & (num >= 0)
    if kind == "proportion":   # ingest quarantines such rows; never let one break a whole month
        ok &= num <= den
    if ok.sum() < cfg.min_units:
        return None
    sid, value, num, den = sid[ok], value[ok], num[ok], den[ok]
    spec = FUNNEL_SPECS[kind]
    if kind == "proportion":
        cases, target, to_value = den, None, 1.0
    else:  # rate: observed count against expected count at the month's national rate
        rate = num.sum() / den.sum()
        if rate <= 0:
            return None
        cases, target, to_value = rate * den, 1.0, rate * scale
    res = funnel(num, cases, kind=spec.kind, transform=spec.transform, trim_method=spec.trim_method,
                 overdispersion=cfg.overdispersion, trim=cfg.trim)
    target = res.target if target is None else target
    t = res.table
    z, lower, upper = t["z_adjusted"].to_numpy(), t["lower_998"].to_numpy(), t["upper_998"].to_numpy()
    tau2, adjustment = res.tau2, res.adjustment
    if cfg.robust_spread and cfg.overdispersion == "additive":
        # the winsorised DerSimonian-Laird tau² leaves real heterogeneity too narrow: widen it
        # until the month's adjusted z have the spread of a standard normal (robust_tau2)
        start = res.tau2 if res.adjustment == "additive" else 0.0
        wider = robust_tau2(t["y"], t["s"], res.target_transformed, start)
        if wider > start:
            tau2, adjustment = wider, "additive"
            z = ((t["y"] - res.target_transformed) / np.sqrt(t["s"] ** 2 + tau2)).to_numpy()
            lim = funnel_limits(cases, res.target, kind=spec.kind, transform=spec.transform, tau2=tau2,
                                overdispersion="additive")
            lower, upper = lim["lower_998"].to_numpy(), lim["upper_998"].to_numpy()
    n = len(sid)
    return {"service_id": sid, "value": value, "z": z,
            "expected": np.full(n, target * to_value),
            "lower": lower * to_value, "upper": upper * to_value,
            "numerator": num, "denominator": den, "phi": np.full(n, res.phi), "tau2": np.full(n, tau2),
            "adjustment": np.full(n, adjustment, dtype=object), "n_units": np.full(n, n)}


# Scales for the robust z when no counts are available: (forward, inverse, admissible values).
_SCALES = {
    "log": (np.log, np.exp, lambda v: v > 0),
    "arcsine": (lambda v: np.arcsin(np.sqrt(np.clip(v, 0, 1))),
                lambda t: np.sin(np.clip(t, 0, np.pi / 2)) ** 2, lambda v: (v >= 0) & (v <= 1)),
}


def _robust_month(sid, value, cfg: PeerConfig, scale: str = "log") -> dict | None:
    """Robust z (median / MAD) of the month's values on a variance-stabilising scale."""
    fwd, inv, admissible = _SCALES[scale]
    ok = np.isfinite(value) & admissible(value)
    if ok.sum() < cfg.min_units:
        return None
    sid, value = sid[ok], value[ok]
    t = fwd(value)
    med = np.median(t)
    mad = MAD_SCALE * np.median(np.abs(t - med))
    if not mad > 0:
        return None
    n = len(sid)
    nan = np.full(n, np.nan)
    return {"service_id": sid, "value": value, "z": (t - med) / mad, "expected": np.full(n, inv(med)),
            "lower": np.full(n, inv(med - Z998 * mad)), "upper": np.full(n, inv(med + Z998 * mad)),
            "numerator": nan, "denominator": nan, "phi": nan, "tau2": nan,
            "adjustment": np.full(n, None, dtype=object), "n_units": np.full(n, n)}


def _month_scores(sid, value, num, den, code: str, cfg: PeerConfig) -> dict | None:
    """Funnel when the month's units carry counts; otherwise (values sent without numerator
    and denominator) a robust z on the indicator's variance-stabilising scale."""
    ind = CATALOGUE[code]
    if code in cfg.robust_indicators:
        return _robust_month(sid, value, cfg)
    if (np.isfinite(num) & np.isfinite(den) & (den > 0)).sum() >= cfg.min_units:
        return _funnel_month(sid, value, num, den, ind.kind, ind.scale, cfg)
    return _robust_month(sid, value, cfg, "arcsine" if ind.kind == "proportion" else "log")


def funnel_curves(code: str, month: pd.DataFrame, sizes) -> pd.DataFrame:
    """The 95 % and 99.8 % limits the detector applied in one month, redrawn at ``sizes``.

    ``month``: the rows of :func:`peer_scores` for that month (one funnel); ``sizes``: cases
    for a proportion, workers followed for a rate. Returns ``x``, ``lower_95``, ``upper_95``,
    ``lower_998``, ``upper_998`` on the indicator's scale; at a service's own size the 99.8 %
    limits are its ``lower`` and ``upper``.
    """
    ind = CATALOGUE[code]
    spec = FUNNEL_SPECS[ind.kind]
    first = month.iloc[0]
    xs = np.asarray(sizes, dtype=float)
    fit = dict(transform=spec.transform, tau2=float(first["tau2"]), phi=float(first["phi"]),
               overdispersion=str(first["adjustment"]))
    expected = float(first["expected"])
    if ind.kind == "proportion":
        return funnel_limits(xs, expected, kind=spec.kind, **fit).rename(columns={"denominator": "x"})
    rate = expected / ind.scale            # the month's national rate per worker
    lim = funnel_limits(rate * xs, 1.0, kind=spec.kind, **fit)
    return lim.drop(columns="denominator").mul(expected).assign(x=xs)[
        ["x", "lower_95", "upper_95", "lower_998", "upper_998"]]


def recent_beyond(zw: pd.DataFrame, z: float, window: int) -> np.ndarray:
    """How many of the last ``window`` observed periods (this one included) were beyond ``z``;
    NaN where none was observed. Sums of each window's own values: the same whatever period
    the frame starts at (a monthly run's frame starts a few periods back)."""
    a = zw.to_numpy(dtype=float)
    beyond = np.where(np.isnan(a), np.nan, (a > z).astype(float))
    win = trailing_windows(beyond, window)
    seen = (~np.isnan(win)).sum(axis=-1)
    return np.where(seen > 0, np.nansum(win, axis=-1), np.nan)


def structural_z(zw: pd.DataFrame, window: int) -> pd.DataFrame:
    """A service's mean worse-side z over its last ``window`` observed periods, standardised by
    the robust spread (1.4826 × MAD) of those means across the period's services.

    A service persistently beyond its peers is more certain than one period says, as far as its
    periods' deviations are independent: when they are (noise from period to period), the mean
    of ``window`` z has a spread near ``1 / sqrt(window)`` and the standardised mean is about
    ``sqrt(window)`` times one period's z; when the services' differences are persistent (real
    heterogeneity), the spread stays near 1 and the statistic is one period's z. Either way it is
    N(0, 1)-like in control, so it is tested at the same limit.
    """
    win = trailing_windows(zw.to_numpy(dtype=float), window)
    full = (~np.isnan(win)).sum(axis=-1) == window
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.where(full, win.sum(axis=-1) / window, np.nan)
        dev = m - np.nanmedian(m, axis=1, keepdims=True)
        spread = MAD_SCALE * np.nanmedian(np.abs(dev), axis=1, keepdims=True)
    spread = np.where(spread > 0, spread, np.nan)
    return pd.DataFrame(dev / spread, index=zw.index, columns=zw.columns)


def persistent_flags(zw: pd.DataFrame, cfg: PeerConfig, recent: np.ndarray | None = None) -> pd.DataFrame:
    """periods × services booleans: persistently beyond 99.8 % (``persist_count`` of the last
    ``persist_window`` periods, this one included) and beyond the limit, this period or in its
    structural mean (:func:`structural_z`). ``recent``: :func:`recent_beyond`, if already counted."""
    a = zw.to_numpy(dtype=float)
    if recent is None:
        recent = recent_beyond(zw, cfg.persist_z, cfg.persist_window)
    with np.errstate(invalid="ignore"):
        persistent = recent >= cfg.persist_count
        flags = (a > cfg.limit_z) & persistent
        if cfg.structural_window > 1:
            # the same persistence, with the limit applied to the structural mean instead of this
            # period alone: one extreme period is still not an alert
            flags |= persistent & (a > cfg.persist_z) & \
                (structural_z(zw, cfg.structural_window).to_numpy() > cfg.limit_z)
    return pd.DataFrame(flags, index=zw.index, columns=zw.columns)


def periods_back(months: np.ndarray, first: int, count: int) -> int | None:
    """The month of the ``count``-th observed period before ``first`` (``months``: the months
    an indicator was observed); None when the history does not go back that far (then every
    period is needed)."""
    if count <= 0:
        return first
    earlier = np.unique(months[months < first])
    return int(earlier[-count]) if earlier.size >= count else None


def peer_scores(panel: Panel, code: str, cfg: PeerConfig, upto: int | None = None,
                since: int | None = None) -> pd.DataFrame:
    """Every service-month of one indicator against its month's peers (long frame), for the
    months up to ``upto`` and from ``since`` (each month is a cross-section of its own, so a
    run over recent months computes only them and gives the same scores).

    Columns: month_index, service_id, value, z (adjusted), zw (worse side positive), expected,
    lower, upper, numerator, denominator, phi, tau2, n_units.
    """
    obs = panel.indicator(code)
    if since is not None and not (obs["month_index"] < since).any():
        since = None                      # the whole history: one cache entry for both
    key = ("peer_scores", code, repr(cfg), upto, since)
    if key in panel.cache:
        return panel.cache[key]
    ind = CATALOGUE[code]
    if upto is not None:
        obs = obs[obs["month_index"] <= upto]
    if since is not None:
        obs = obs[obs["month_index"] >= since]
    obs = obs.sort_values("month_index", kind="mergesort")
    months = obs["month_index"].to_numpy()
    sid = obs["service_id"].to_numpy()
    value = obs["value"].to_numpy(dtype=float)
    num = obs["numerator"].to_numpy(dtype=float)
    den = obs["denominator"].to_numpy(dtype=float)
    bounds = np.flatnonzero(np.diff(months)) + 1
    parts = []
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(months)]):
        if hi <= lo:
            continue
        sl = slice(lo, hi)
        r = _month_scores(sid[sl], value[sl], num[sl], den[sl], code, cfg)
        if r is not None:
            r["month_index"] = np.full(len(r["service_id"]), months[lo])
            parts.append(r)
    if not parts:
        cs = pd.DataFrame()
    else:
        cs = pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in COLUMNS + ["month_index"]})
        cs["zw"] = (-1.0 if ind.worse == "lower" else 1.0) * cs["z"]
    panel.cache[key] = cs
    return cs


class PeerOutlier(Detector):
    name = "peer_funnel"
    version = "1"
    category = "peer_outlier"
    family = "peer"
    Config = PeerConfig

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        cfg: PeerConfig = self.config
        months = np.asarray(months)
        if months.size == 0:
            return empty_findings()
        out = []
        # the persistence and structural windows look back this many observed periods
        lookback = max(cfg.persist_window, cfg.structural_window) - 1
        for code in cfg.indicators:
            ind = CATALOGUE[code]
            observed = panel.indicator(code)["month_index"].to_numpy()
            cs = peer_scores(panel, code, cfg, upto=int(months.max()),
                             since=periods_back(observed, int(months.min()), lookback))
            if cs.empty:
                continue
            zw = cs.pivot_table(index="month_index", columns="service_id", values="zw", aggfunc="last")
            # Persistence counts observed periods: rows are the periods this indicator was reported.
            recent = recent_beyond(zw, cfg.persist_z, cfg.persist_window)
            flags = persistent_flags(zw, cfg, recent)
            recent = pd.DataFrame(recent, index=zw.index, columns=zw.columns)
            # hysteresis: still beyond the peers' 99.8 % limits, though under the alert limit
            still = ((zw > cfg.persist_z) & ~flags).stack()
            still = still[still].index.to_frame(index=False)
            still = still[still["month_index"].isin(months)]
            if len(still):
                out.append(self.sustaining(still, code))
            hit = flags.stack()
            hit = hit[hit].index.to_frame(index=False)
            hit = hit[hit["month_index"].isin(months)]
            if hit.empty:
                continue
            f = hit.merge(cs, on=["month_index", "service_id"], how="left")
            f["months_out"] = [int(recent.at[m, s]) for m, s in zip(f["month_index"], f["service_id"])]
            f["indicator"] = code
            f["score"] = f["zw"]
            f["severity"] = severity_from_score(f["zw"], cfg.limit_z, cfg.high_z)
            bound = f["lower"] if ind.worse == "lower" else f["upper"]
            side = "sous la limite basse" if ind.worse == "lower" else "au-dessus de la limite haute"
            kind = panel.period_kind(code)
            last_periods = LAST_PERIODS_FR[kind]
            ci_lo, ci_hi = value_interval(code, f["numerator"], f["denominator"])
            ci = [f" (IC 95 % {fmt_value(code, lo)} – {fmt_value(code, hi)})" if np.isfinite(lo) else ""
                  for lo, hi in zip(ci_lo, ci_hi)]
            f["explanation"] = [
                f"{label(code)} : {fmt_value(code, v)}{c} {period_phrase_fr(m, kind)} contre {fmt_value(code, e)} "
                f"attendu ; {side} 99,8 % des pairs ({fmt_value(code, b)})"
                + (f" {k} des {cfg.persist_window} {last_periods}" if cfg.persist_window > 1 else "")
                + f" (z ajusté {fr_number(z, 1)})"
                for v, c, m, e, b, k, z in zip(f["value"], ci, f["month_index"], f["expected"], bound,
                                               f["months_out"], f["zw"])]
            f["evidence"] = [
                {"z_adjusted": round(float(z), 3), "phi": None if pd.isna(p) else round(float(p), 3),
                 "tau2": None if pd.isna(t) else float(t), "n_units": int(n),
                 "numerator": None if pd.isna(a) else float(a),
                 "denominator": None if pd.isna(b) else float(b), "months_out": int(k),
                 "ci95": None if not np.isfinite(lo) else [round(float(lo), 6), round(float(hi), 6)],
                 "method": "robust_z_log" if code in cfg.robust_indicators else "funnel"}
                for z, p, t, n, a, b, k, lo, hi in zip(f["zw"], f["phi"], f["tau2"], f["n_units"],
                                                       f["numerator"], f["denominator"], f["months_out"],
                                                       ci_lo, ci_hi)]
            out.append(self.findings(f))
        return pd.concat(out, ignore_index=True) if out else empty_findings()
