"""French formatting of numbers and indicator values for explanations, mails and pages."""
from __future__ import annotations

import math

from monitor.vocabulary.periods import month_label_fr
from monitor.vocabulary.catalogue import CATALOGUE

NBSP = "\u00a0"
NNBSP = "\u202f"


def fr_number(x: float | None, decimals: int = 0) -> str:
    """1234.5 -> '1 234,5' (narrow no-break space for thousands, decimal comma)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n.d."
    text = f"{x:,.{decimals}f}"
    return text.replace(",", NNBSP).replace(".", ",")


def fmt_value(indicator: str, value: float | None) -> str:
    """An indicator's value with its unit, e.g. '61 %', '0,52 ‰', '4 820 salariés par ETP'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n.d."
    ind = CATALOGUE.get(indicator)
    if ind is None:
        return fr_number(value, 2)
    if ind.kind == "proportion":
        pct = 100 * value
        return f"{fr_number(pct, 0 if abs(pct) >= 10 else 1)}{NBSP}%"
    if ind.kind == "rate":
        return f"{fr_number(value, 2 if value < 10 else 1)}{NBSP}{ind.unit}"
    if indicator == "vip_init_median_delay_days":
        return f"{fr_number(value, 0)}{NBSP}jours"
    if indicator == "workers_per_physician_fte":
        return f"{fr_number(value, 0)} salariés par ETP"
    if indicator in ("physician_fte", "nurse_fte"):
        return f"{fr_number(value, 1)}{NBSP}ETP"
    if indicator == "cotisation_vs_cmn_ratio":
        return f"{fr_number(100 * value, 0)}{NBSP}% du coût moyen national"
    if indicator == "workers_followed":
        return f"{fr_number(value, 0)} salariés"
    return fr_number(value, 2)


def label(indicator: str) -> str:
    ind = CATALOGUE.get(indicator)
    if indicator == "*":
        return "Rapport complet (tous indicateurs)"
    return ind.label_fr if ind else indicator


def month_fr(month_index: int) -> str:
    return month_label_fr(month_index)
