"""Naive baselines, only for ``evaluate`` (never in the production registry).

* ``NaiveCrossSectionZ``: per indicator and month, z = (value - mean) / sd across services,
  flagged when |z| > 3 (no sizes, no direction, no persistence);
* ``OwnHistoryRobustZ``: z = (value - median) / (1.4826 MAD) of the service's own last 24
  observations, flagged when |z| > 3.5 (no seasonality, no peers);
* ``EcodAlone``: PyOD ECOD on the raw monthly indicator values of all services, flagged at its
  default threshold with contamination 1 % (top contributing indicator named).
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorConfig, empty_findings
from detectors.panel import Panel
from detectors.temporal import past_median_mad

BASELINE_INDICATORS = ("vip_init_in_delay_rate", "vip_init_median_delay_days", "sir_overdue_rate",
                       "reprise_within_8d_rate", "workers_per_physician_fte", "physician_fte",
                       "nurse_fte", "pdp_cases_per_1000", "prereprise_per_1000", "amt_per_1000",
                       "complaints_per_10k")


@dataclasses.dataclass(frozen=True)
class NaiveConfig(DetectorConfig):
    threshold: float = 3.0
    window: int = 24
    contamination: float = 0.01


def _hits(z: pd.DataFrame, threshold: float, months: np.ndarray, code: str) -> pd.DataFrame:
    hit = (z.abs() > threshold).stack()
    hit = hit[hit].index.to_frame(index=False)
    hit = hit[hit["month_index"].isin(months)]
    hit["indicator"] = code
    hit["score"] = [abs(z.at[m, s]) for m, s in zip(hit["month_index"], hit["service_id"])]
    hit["severity"] = "medium"
    hit["explanation"] = "alerte de référence"
    return hit


class NaiveCrossSectionZ(Detector):
    name = "baseline_naive_z"
    category = "peer_outlier"
    family = "baseline"
    Config = NaiveConfig

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        out = []
        for code in BASELINE_INDICATORS:
            w = panel.wide(code)
            if w.empty:
                continue
            z = w.sub(w.mean(axis=1), axis=0).div(w.std(axis=1), axis=0)
            out.append(_hits(z, self.config.threshold, np.asarray(months), code))
        f = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
        return self.findings(f) if len(f) else empty_findings()


class OwnHistoryRobustZ(Detector):
    name = "baseline_own_robust_z"
    category = "drift"
    family = "baseline"
    Config = dataclasses.make_dataclass("OwnConfig", [("threshold", float, 3.5), ("window", int, 24)],
                                        bases=(DetectorConfig,), frozen=True)

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        out = []
        for code in BASELINE_INDICATORS:
            w = panel.wide(code)
            if w.empty:
                continue
            a = w.to_numpy(dtype=float)
            med, mad, n = past_median_mad(a, self.config.window)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (a - med) / mad
            z[(n < 12) | ~np.isfinite(z)] = 0.0
            out.append(_hits(pd.DataFrame(z, index=w.index, columns=w.columns), self.config.threshold,
                             np.asarray(months), code))
        f = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
        return self.findings(f) if len(f) else empty_findings()


class EcodAlone(Detector):
    name = "baseline_ecod"
    category = "peer_outlier"
    family = "baseline"
    Config = NaiveConfig

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        from pyod.models.ecod import ECOD

        obs = panel.observations
        obs = obs[obs["indicator"].isin(BASELINE_INDICATORS) & obs["month_index"].isin(np.asarray(months))]
        rows = []
        for m, g in obs.groupby("month_index"):
            X = g.pivot_table(index="service_id", columns="indicator", values="value", aggfunc="last")
            if len(X) < 20:
                continue
            X = X.fillna(X.median())
            model = ECOD(contamination=self.config.contamination)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X.to_numpy())
            for i in np.nonzero(model.labels_)[0]:
                rows.append({"service_id": X.index[i], "indicator": X.columns[int(np.argmax(model.O[i]))],
                             "month_index": int(m), "score": float(model.decision_scores_[i]),
                             "severity": "medium", "explanation": "alerte de référence"})
        return self.findings(pd.DataFrame(rows)) if rows else empty_findings()


BASELINES = {
    "référence z naïf (|z|>3)": NaiveCrossSectionZ,
    "référence z robuste propre (>3,5)": OwnHistoryRobustZ,
    "référence ECOD seul": EcodAlone,
}
