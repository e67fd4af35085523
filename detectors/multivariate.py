"""Multivariate detector: is the combination of a service's indicators unusual this month?

Each month, every service is described by its worse-side peer z-scores (the same funnel and
robust z as the peer detector, so sizes are accounted for; positive = worse than peers). A PyOD
model (ECOD by default; COPOD or IForest selectable) is fit on that month's cross-section.

ECOD and COPOD compute, per indicator, the empirical right-tail score ``U_r = -log P(X >= x)``.
Only that worse-side tail is used (doing better than peers is never unusual): the service's
score is ``S = sum_j U_r[j]`` and, if the indicators were independent, each ``U_r`` would be
Exp(1) and ``S`` Gamma(d, 1), so ``p = GammaSF(S; d)`` is the chance of a combination at least
this extreme. The per-indicator ``U_r`` are the explanation. IForest has no per-feature
decomposition: its score is turned into a robust z across services and the explanation uses
the z-scores.

Alert budget (detectors.budget): 0.02 false alert per 100 services per month, and
this family tests one score per service and month (not one per indicator), so the per-cell
level is p < 2e-4 (z > 3.54) this month, with p < 0.002 (z > 3.09) in ``persist_count`` of the
last ``persist_window`` months.
Note: PyOD's ``decision_function`` re-fits ECOD/COPOD on new rows, so we only ever use the
``decision_scores_`` of the month the model was fit on.
"""
from __future__ import annotations

import dataclasses
import importlib
import sys
import types
import warnings

import numpy as np
import pandas as pd
from scipy.stats import gamma, norm

from monitor.vocabulary.formatting import fmt_value, fr_number, label
from monitor.vocabulary.periods import period_phrase_fr
from detectors.base import Detector, DetectorConfig, empty_findings
from detectors.budget import ALERT_BUDGET, budget_z
from detectors.panel import Panel
from detectors.peer import MAD_SCALE, PeerConfig, Z998, peer_scores

MODELS = ("ecod", "copod", "iforest")


@dataclasses.dataclass(frozen=True)
class MultivariateConfig(DetectorConfig):
    DERIVED = ("limit_z",)
    model: str = "ecod"
    budget: float = ALERT_BUDGET
    persist_z: float = Z998
    persist_window: int = 3
    persist_count: int = 2
    min_services: int = 20
    min_features: int = 3
    top_contributions: int = 3
    random_state: int = 0

    @property
    def limit_z(self) -> float:
        """The budget over one combined test per service and month: z > 3.54 (p = 2e-4)."""
        return budget_z(self.budget, 1)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")


_NUMBA_CACHE: list[bool] = []


def _cache_compiled_ecdf() -> None:
    """PyOD's ECDF helper is a numba function compiled afresh in every process (about a
    second); keep its machine code on disk, like ``@njit(cache=True)`` would. Without a
    writable cache folder it is simply compiled as before."""
    if _NUMBA_CACHE:
        return
    _NUMBA_CACHE.append(True)
    try:
        from pyod.utils import stat_models

        helper = getattr(stat_models, "ecdf_terminate_equals_inplace", None)
        if helper is not None and hasattr(helper, "enable_caching"):
            helper.enable_caching()
    except Exception:            # noqa: BLE001 - caching is an optimisation only
        pass


class _DeferredPyplot(types.ModuleType):
    """Stands for ``matplotlib.pyplot`` until an attribute is used, then loads it for real."""

    def __getattr__(self, name: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        return getattr(real, name)


def _defer_pyplot() -> None:
    """PyOD's ECOD and COPOD modules import ``matplotlib.pyplot`` at load time (about a second)
    for a plotting method this detector never calls: until something really uses pyplot, a
    placeholder stands in for it (its first attribute access imports the real module)."""
    if "matplotlib.pyplot" not in sys.modules:
        sys.modules["matplotlib.pyplot"] = _DeferredPyplot("matplotlib.pyplot")


def _model(cfg: MultivariateConfig):
    _defer_pyplot()
    _cache_compiled_ecdf()
    if cfg.model == "ecod":
        from pyod.models.ecod import ECOD
        return ECOD()
    if cfg.model == "copod":
        from pyod.models.copod import COPOD
        return COPOD()
    from pyod.models.iforest import IForest
    return IForest(random_state=cfg.random_state, n_estimators=100)


def feature_panel(panel: Panel, upto: int, peer_cfg: PeerConfig | None = None,
                  since: int | None = None) -> pd.DataFrame:
    """Long frame month_index, service_id, indicator, zw, value, expected for all peer
    indicators, months ``since`` to ``upto``."""
    peer_cfg = peer_cfg or PeerConfig()
    parts = []
    for code in peer_cfg.count_indicators + peer_cfg.robust_indicators:
        cs = peer_scores(panel, code, peer_cfg, upto=upto, since=since)
        if len(cs):
            parts.append(cs[["month_index", "service_id", "zw", "value", "expected"]].assign(indicator=code))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


class MultivariateOutlier(Detector):
    name = "multivariate_ecod"
    version = "1"
    category = "peer_outlier"
    family = "multivariate"
    Config = MultivariateConfig

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.name = f"multivariate_{self.config.model}"

    def monthly_scores(self, feats: pd.DataFrame, months: np.ndarray | None = None) -> tuple[pd.DataFrame, dict]:
        """Each month's model scores (one fit per month's cross-section, from one pivot of all
        months). With ``months``, only the months a finding for them needs are fit: those
        months, and before them enough scored months for the persistence window (each month's
        score uses that month's cross-section only, so this gives the same scores)."""
        cfg: MultivariateConfig = self.config
        if feats.empty:
            return pd.DataFrame(), {}
        wide = feats.pivot_table(index=["month_index", "service_id"], columns="indicator", values="zw",
                                 aggfunc="last")
        month_of = wide.index.get_level_values(0).to_numpy()
        bounds = np.flatnonzero(np.diff(month_of)) + 1
        starts, ends = np.r_[0, bounds], np.r_[bounds, len(month_of)]
        values = wide.to_numpy(dtype=float)
        services = wide.index.get_level_values(1).to_numpy()
        columns = wide.columns.to_numpy()
        first = None if months is None or np.asarray(months).size == 0 else int(np.min(months))
        earlier = 0                       # scored months before ``first``, for persistence
        rows, contrib = [], {}
        for lo, hi in zip(starts[::-1], ends[::-1]):        # latest month first
            m = int(month_of[lo])
            if first is not None and m < first and earlier >= cfg.persist_window - 1:
                break
            block = values[lo:hi]
            keep = np.isfinite(block).mean(axis=0) >= 0.5
            if hi - lo < cfg.min_services or keep.sum() < cfg.min_features:
                continue
            Xf = np.nan_to_num(block[:, keep], nan=0.0)
            ids, cols = services[lo:hi], columns[keep]
            model = _model(cfg)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(Xf)
            if hasattr(model, "U_r"):
                per_feature = np.asarray(model.U_r, dtype=float)
                score = per_feature.sum(axis=1)
                p = gamma.sf(score, a=per_feature.shape[1])
            else:
                score = np.asarray(model.decision_scores_, dtype=float)
                med = np.median(score)
                mad = MAD_SCALE * np.median(np.abs(score - med))
                p = norm.sf((score - med) / mad) if mad > 0 else np.ones_like(score)
                per_feature = np.clip(Xf, 0, None)
            z = norm.isf(np.clip(p, 1e-300, 1.0))
            rows.append(pd.DataFrame({"month_index": m, "service_id": ids, "score_raw": score, "z": z}))
            contrib[m] = (ids, cols, per_feature, Xf)
            if first is not None and m < first:
                earlier += 1
        rows.reverse()
        return (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()), contrib

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        cfg: MultivariateConfig = self.config
        months = np.asarray(months)
        if months.size == 0:
            return empty_findings()
        first, start = int(months.min()), int(panel.months.min())
        back = needed = cfg.persist_window - 1
        while True:
            # each month's score is its own cross-section's: the months from ``since`` give the
            # same scores as the whole history once they hold the persistence window's
            # scored months before ``first`` (else look further back)
            since = first - back if first - back > start else None
            feats = feature_panel(panel, int(months.max()), since=since)
            if feats.empty:
                return empty_findings()
            scores, contrib = self.monthly_scores(feats, months)
            scored_before = scores.loc[scores["month_index"] < first, "month_index"].nunique() if len(scores) else 0
            if since is None or scored_before >= needed:
                break
            back = max(2 * back, 12)
        if scores.empty:
            return empty_findings()
        zw = scores.pivot_table(index="month_index", columns="service_id", values="z")
        recent = (zw > cfg.persist_z).astype(float).where(zw.notna()).rolling(cfg.persist_window, min_periods=1).sum()
        flags = (zw > cfg.limit_z) & (recent >= cfg.persist_count)
        hit = flags.stack()
        hit = hit[hit].index.to_frame(index=False)
        hit = hit[hit["month_index"].isin(months)]
        if hit.empty:
            return empty_findings()
        values = feats.set_index(["month_index", "service_id", "indicator"])
        rows = []
        for m, sid in zip(hit["month_index"], hit["service_id"]):
            ids, cols, O, Xc = contrib[m]
            i = int(np.nonzero(ids == sid)[0][0])
            worse = Xc[i] > 0                  # only indicators on their worse side explain
            order = [j for j in np.argsort(-O[i]) if worse[j]][:cfg.top_contributions]
            if not order:
                continue
            top = cols[order[0]]
            parts = []
            for j in order:
                code = cols[j]
                v = values.loc[(m, sid, code)] if (m, sid, code) in values.index else None
                parts.append(f"{label(code)} {fmt_value(code, None if v is None else float(v['value']))} "
                             f"(attendu {fmt_value(code, None if v is None else float(v['expected']))})")
            z = float(zw.at[m, sid])
            rows.append({"service_id": sid, "indicator": top, "month_index": int(m), "score": z,
                         "severity": "high" if z > 2 * cfg.limit_z else "medium",
                         "value": float(values.loc[(m, sid, top), "value"]) if (m, sid, top) in values.index else np.nan,
                         "explanation": f"Combinaison inhabituelle d'indicateurs {period_phrase_fr(m, panel.period_kind())} "
                                        f"(score {cfg.model.upper()} équivalent à {fr_number(z, 1)} écarts-types) : " + " ; ".join(parts),
                         "evidence": {"model": cfg.model, "z": round(z, 3),
                                      "contributions": {str(cols[j]): round(float(O[i, j]), 3) for j in order}}})
        return self.findings(pd.DataFrame(rows)) if rows else empty_findings()
