"""The funnel plot of one indicator and month, drawn with the peer detector's own limits
(:func:`detectors.peer.funnel_curves`): services outside the user's regions are anonymous."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa

from monitor.readmodels.common import (
    acting_user,
    check_service,
    load_analysis_panel,
    peer_config,
    peer_indicators,
    peer_scores_of,
)
from monitor.vocabulary.catalogue import CATALOGUE
from monitor.vocabulary.formatting import fmt_value
from monitor.vocabulary.periods import month_label_fr

if TYPE_CHECKING:
    from detectors.panel import Panel


@dataclass
class FunnelData:
    """What a funnel plot of one indicator and month needs.

    ``points``: one row per service reporting that month: ``x`` (size: denominator or
    workers followed), ``value``, ``zw`` (worse-side z; NaN for out-of-scope services),
    ``outside`` (beyond the 99.8 % limits), ``in_scope``, ``highlight``, and ``service_id``
    / ``name`` only for services of the user's regions (None otherwise).
    ``curves``: ``x``, ``lower_95``, ``upper_95``, ``lower_998``, ``upper_998`` (indicator
    scale), empty when the indicator has no limits. ``method``: ``funnel`` (counts),
    ``robust`` (log scale, limits constant in size) or ``none`` (no peer comparison).
    """
    indicator: str
    month_index: int | None
    method: str
    target: float | None
    x_label: str
    points: pd.DataFrame
    curves: pd.DataFrame
    note: str = ""
    band: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def period_label(self) -> str:
        return month_label_fr(self.month_index) if self.month_index is not None else "—"

POINT_COLUMNS = ["service_id", "name", "region_code", "x", "value", "zw", "outside", "in_scope", "highlight",
                 "value_text"]

def nearest_month(months: np.ndarray, target: int | None) -> int | None:
    if len(months) == 0:
        return None
    if target is None:
        return int(months.max())
    before = months[months <= target]
    return int(before.max()) if len(before) else int(months.min())

def funnel_data(engine: sa.Engine, actor, indicator: str, month_index: int | None = None,
                highlight: str | None = None, panel: Panel | None = None) -> FunnelData:
    """Every service's value of ``indicator`` in a month (default: the latest; a quarterly or
    annual indicator uses its latest period up to that month) against its size, with the
    peer detector's limits. Services outside the user's regions are anonymous."""
    who = acting_user(engine, actor)
    if highlight is not None:
        check_service(engine, who.email, highlight)
    ind = CATALOGUE.get(indicator)
    empty_pts = pd.DataFrame(columns=POINT_COLUMNS)
    empty_curves = pd.DataFrame(columns=["x", "lower_95", "upper_95", "lower_998", "upper_998"])
    if ind is None:
        return FunnelData(indicator, month_index, "none", None, "", empty_pts, empty_curves,
                          note="Pas de comparaison aux pairs pour ce type d'alerte.")
    if indicator == "workers_followed":
        return FunnelData(indicator, month_index, "none", None, "", empty_pts, empty_curves,
                          note="L'effectif suivi mesure la taille du service : pas de comparaison aux pairs "
                               "(voir son évolution).")
    panel = panel if panel is not None else load_analysis_panel(engine)
    obs = panel.indicator(indicator)
    m = nearest_month(obs["month_index"].unique(), month_index)
    if m is None:
        return FunnelData(indicator, month_index, "none", None, "", empty_pts, empty_curves,
                          note="Aucune donnée pour cet indicateur.")
    services = panel.services
    size = panel.indicator("workers_followed", statistical=False)
    size = size[size["month_index"] == m].drop_duplicates("service_id", keep="last").set_index("service_id")["value"]
    curves = empty_curves
    target = None
    note = ""
    band = ind.band
    cfg = peer_config()
    if indicator in peer_indicators():
        cs = peer_scores_of(panel, indicator)
        cs = cs[cs["month_index"] == m] if len(cs) else cs
    else:
        cs = pd.DataFrame()
    if len(cs):
        pts = cs[["service_id", "value", "zw", "lower", "upper", "denominator", "expected"]].copy()
        if indicator in cfg.count_indicators and cs["adjustment"].notna().all():
            from detectors.peer import funnel_curves

            method, x_label = "funnel", ("Nombre de cas (dénominateur)" if ind.kind == "proportion"
                                         else "Salariés suivis")
            pts["x"] = pts["denominator"]
            target = float(pts["expected"].iloc[0])
            # a smooth curve, through every service's own size: there it is the detector's limit
            grid = np.geomspace(max(1.0, pts["x"].min() / 1.25), pts["x"].max() * 1.25, 160)
            xs = np.unique(np.concatenate([grid, pts["x"].to_numpy(dtype=float)]))
            curves = funnel_curves(indicator, cs, xs)
        else:
            method, x_label = "robust", "Salariés suivis"
            pts["x"] = pts["service_id"].map(size)
            target = float(pts["expected"].iloc[0])
            xs = np.array([max(1.0, pts["x"].min() * 0.8), pts["x"].max() * 1.1]) if pts["x"].notna().any() \
                else np.array([1.0, 1.0])
            lo, hi = float(pts["lower"].iloc[0]), float(pts["upper"].iloc[0])
            curves = pd.DataFrame({"x": xs, "lower_95": np.nan, "upper_95": np.nan,
                                   "lower_998": lo, "upper_998": hi})
            note = "Comparaison robuste sur l'échelle logarithmique : limites à 99,8 % indépendantes de la taille."
        pts["outside"] = (pts["value"] < pts["lower"]) | (pts["value"] > pts["upper"])
    else:
        method, x_label = "none", "Salariés suivis"
        o = obs[obs["month_index"] == m].drop_duplicates("service_id", keep="last")
        pts = o[["service_id", "value"]].copy()
        pts["x"] = pts["service_id"].map(size)
        pts["zw"] = np.nan
        if band is not None:
            pts["outside"] = (pts["value"] < band[0]) | (pts["value"] > band[1])
            note = (f"Cet indicateur est comparé à sa plage réglementaire "
                    f"({fmt_value(indicator, band[0])} – {fmt_value(indicator, band[1])}).")
        else:
            pts["outside"] = False
            note = "Indicateur dépendant de la taille du service : pas de limites de comparaison aux pairs."
    region = services["region_code"].reindex(pts["service_id"]).to_numpy()
    names = services["name"].reindex(pts["service_id"]).to_numpy()
    in_scope = np.array([who.covers(r) if isinstance(r, str) else False for r in region], dtype=bool)
    out = pd.DataFrame({
        "service_id": np.where(in_scope, pts["service_id"].to_numpy(dtype=object), None),
        "name": np.where(in_scope, names, None),
        "region_code": np.where(in_scope, region, None),
        "x": pts["x"].to_numpy(dtype=float),
        "value": pts["value"].to_numpy(dtype=float),
        "zw": np.where(in_scope, pts["zw"].to_numpy(dtype=float), np.nan),
        "outside": pts["outside"].fillna(False).to_numpy(dtype=bool),
        "in_scope": in_scope,
        "highlight": (pts["service_id"].to_numpy(dtype=object) == highlight) & in_scope,
    })
    out["value_text"] = [fmt_value(indicator, v) for v in out["value"]]
    out = out[np.isfinite(out["x"]) & np.isfinite(out["value"])]
    # out-of-scope rows are shuffled into a stable order unrelated to their SIRET
    out = out.sort_values(["in_scope", "x"], kind="mergesort").reset_index(drop=True)
    curves = curves.replace([np.inf, -np.inf], np.nan).reset_index(drop=True)
    return FunnelData(indicator, m, method, target, x_label, out[POINT_COLUMNS], curves, note=note, band=band)
