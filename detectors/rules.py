"""Rule detectors: legal or agrément thresholds (always on, no statistics).

| rule | reference |
|---|---|
| median delay to initial VIP above 90 days | R4624-10 (VIP within 3 months) |
| fee outside 80–120 % of the national average cost | D4622-27-6 |
| workers per physician FTE above the ceiling written in the service's agrément | agrément (D4622-49-1 5°) |
| agrément expired, or ending within 6 months | L4622-6-1, D4622-48 |
| no valid certification after 1 May 2025 | L4622-9-3 |
"""
from __future__ import annotations

import dataclasses
import numpy as np
import pandas as pd

from monitor.vocabulary.formatting import fmt_value, fr_number, month_fr
from detectors.base import Detector, DetectorConfig, empty_findings
from detectors.panel import Panel
from monitor.vocabulary.periods import month_index as to_month_index
from monitor.vocabulary.periods import period_phrase_fr


@dataclasses.dataclass(frozen=True)
class RulesConfig(DetectorConfig):
    max_median_vip_delay_days: float = 90.0
    fee_band: tuple[float, float] = (0.8, 1.2)
    agrement_warning_months: int = 6
    certification_deadline: str = "2025-05"
    hysteresis: float = 0.95   # a breached threshold stays an alert until the value is under 95 % of it


class LegalThresholds(Detector):
    """Threshold breaches read from the indicator values."""
    name = "rules_thresholds"
    category = "rule"
    family = "rules"
    Config = RulesConfig

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        cfg: RulesConfig = self.config
        months = np.asarray(months)
        out = []

        def rows(code: str) -> pd.DataFrame:
            o = panel.indicator(code, statistical=False)
            return o[o["month_index"].isin(months)]

        d = rows("vip_init_median_delay_days")
        near = d[(d["value"] > cfg.hysteresis * cfg.max_median_vip_delay_days)
                 & (d["value"] <= cfg.max_median_vip_delay_days)]
        if len(near):
            out.append(self.sustaining(near[["service_id", "month_index", "indicator"]]))
        d = d[d["value"] > cfg.max_median_vip_delay_days].copy()
        if len(d):
            d["score"] = d["value"] / cfg.max_median_vip_delay_days
            d["severity"] = np.where(d["value"] > 1.5 * cfg.max_median_vip_delay_days, "high", "medium")
            d["upper"] = cfg.max_median_vip_delay_days
            d["explanation"] = [f"Délai médian avant VIP initiale : {fmt_value('vip_init_median_delay_days', v)} "
                                f"{period_phrase_fr(m, k)}, au-delà du délai légal de 3 mois (90 jours, art. R4624-10)"
                                for v, m, k in zip(d["value"], d["month_index"], d["period_kind"])]
            d["evidence"] = [{"rule": "R4624-10", "threshold": cfg.max_median_vip_delay_days}] * len(d)
            out.append(d)

        lo, hi = cfg.fee_band
        f = rows("cotisation_vs_cmn_ratio")
        f = f[(f["value"] < lo) | (f["value"] > hi)].copy()
        if len(f):
            f["score"] = np.maximum(lo / f["value"], f["value"] / hi)
            f["severity"] = "high"
            f["lower"], f["upper"] = lo, hi
            f["explanation"] = [f"Cotisation par salarié à {fmt_value('cotisation_vs_cmn_ratio', v)} en {p}, "
                                f"hors de la fourchette légale de 80 à 120 % (art. D4622-27-6)"
                                for v, p in zip(f["value"], f["period"])]
            f["evidence"] = [{"rule": "D4622-27-6", "band": [lo, hi]}] * len(f)
            out.append(f)

        ceilings = panel.services["max_workers_per_physician_fte"].dropna()
        w = rows("workers_per_physician_fte")
        w = w[w["service_id"].isin(ceilings.index)].copy()
        if len(w):
            w["ceiling"] = w["service_id"].map(ceilings).astype(float)
            near = w[(w["value"] > cfg.hysteresis * w["ceiling"]) & (w["value"] <= w["ceiling"])]
            if len(near):
                out.append(self.sustaining(near[["service_id", "month_index", "indicator"]]))
            w = w[w["value"] > w["ceiling"]]
            if len(w):
                w["score"] = w["value"] / w["ceiling"]
                w["severity"] = np.where(w["score"] > 1.2, "high", "medium")
                w["upper"] = w["ceiling"]
                w["explanation"] = [
                    f"Salariés suivis par ETP de médecin : {fmt_value('workers_per_physician_fte', v)} "
                    f"{period_phrase_fr(m, k)}, au-dessus du plafond de {fr_number(c)} fixé par l'agrément"
                    for v, m, c, k in zip(w["value"], w["month_index"], w["ceiling"], w["period_kind"])]
                w["evidence"] = [{"rule": "agrement_ceiling", "ceiling": float(c)} for c in w["ceiling"]]
                out.append(w)
        if not out:
            return empty_findings()
        return pd.concat([self.findings(f) if "detector" not in f else f for f in out], ignore_index=True)


class AgrementCertification(Detector):
    """Register-based rules: agrément expiry and missing certification, checked each month."""
    name = "rules_agrement"
    category = "rule"
    family = "rules"
    Config = RulesConfig

    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        cfg: RulesConfig = self.config
        months = np.asarray(months)
        svc = panel.services
        if svc.empty or months.size == 0:
            return empty_findings()
        obs = panel.observations
        pos = svc.index.get_indexer(obs["service_id"])           # -1: not in the register
        known = pos >= 0
        pos, when = pos[known], obs["month_index"].to_numpy()[known]
        # a service is checked from its first report on (the register is today's)
        first = pd.Series(when).groupby(pos).min().reindex(np.arange(len(svc))).to_numpy(dtype=float)
        end = pd.to_datetime(svc["agrement_end"], errors="coerce")
        end_idx = (end.dt.year * 12 + end.dt.month - 1).to_numpy()
        cert_end = pd.to_datetime(svc["certification_end"], errors="coerce")
        cert_end_idx = (cert_end.dt.year * 12 + cert_end.dt.month - 1).to_numpy()
        level = pd.to_numeric(svc["certification_level"], errors="coerce").fillna(0).to_numpy()
        deadline = to_month_index(cfg.certification_deadline)
        m = months[:, None]
        # checked while the service reports (a service absorbed by a merger stops reporting):
        # a report in this month or one of the two before
        lo = int(min(when.min(), months.min())) if when.size else int(months.min())
        hi = int(max(when.max(), months.max())) if when.size else int(months.max())
        present = np.zeros((hi - lo + 1, len(svc)), dtype=bool)
        present[when - lo, pos] = True
        recent = present.copy()
        recent[1:] |= present[:-1]
        recent[2:] |= present[:-2]
        recent = recent[months - lo]
        active = (m >= np.nan_to_num(first, nan=10**9)[None, :]) & recent
        expired = active & (m > end_idx[None, :])
        expiring = active & ~expired & (m > end_idx[None, :] - cfg.agrement_warning_months)
        no_cert = active & (m >= deadline) & ((level[None, :] <= 0) | ~(m <= cert_end_idx[None, :]))
        rows = []
        ids = svc.index.to_numpy()
        agrement_end = svc["agrement_end"].to_numpy()
        for mask, indicator, sev, text in [
            (expired, "agrement", "high", "Agrément expiré le {end} (art. L4622-6-1, D4622-48)"),
            (expiring, "agrement", "medium", "Agrément arrivant à échéance le {end}, dans moins de {n} mois : renouvellement à instruire (D4622-48)"),
            (no_cert, "certification", "high", "Pas de certification valide en {month} alors qu'elle est obligatoire depuis le 1er mai 2025 (art. L4622-9-3)"),
        ]:
            mi, si = np.nonzero(mask)
            for a, b in zip(mi, si):
                rows.append({"service_id": ids[b], "indicator": indicator, "month_index": int(months[a]),
                             "score": 1.0, "severity": sev,
                             "explanation": text.format(end=agrement_end[b], n=cfg.agrement_warning_months,
                                                        month=month_fr(int(months[a]))),
                             "evidence": {"rule": indicator, "agrement_end": str(agrement_end[b]),
                                          "certification_level": int(level[b])}})
        if not rows:
            return empty_findings()
        return self.findings(pd.DataFrame(rows))
