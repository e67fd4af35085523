"""The control programme's risk score: pure, transparent arithmetic, no database.

Every point of a score comes from one line of :class:`Weights` times a count the product
knows about the service, and each line that adds points becomes one French reason with its
numbers. Nothing is learnt or hidden: a manager can redo any score by hand (the Dutch SyRI
ruling of 2020 struck down an opaque risk score; a control programme must be defensible).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import pandas as pd

from monitor.vocabulary.formatting import fr_number

#: Columns :func:`score_services` reads (one row per service of the region); an optional
#: ``reference_year`` is named in the reasons about data quality and objectives.
INPUT_COLUMNS = ["service_id", "service_name", "alerts_high", "alerts_medium", "alerts_low", "persistent",
                 "rule_breaches", "data_quality", "objectives_missed", "agrement_ending", "certification_ending",
                 "years_since_control"]
OUTPUT_COLUMNS = ["rank", "service_id", "service_name", "score", "selected", "reasons"]


@dataclass(frozen=True)
class Weights:
    """Points per unit of each input. The defaults, and why:

    * an open alert weighs by its severity (3 / 2 / 1), and again when it has lasted six
      months or more (a persistent problem the service did not fix by itself);
    * a breached legal or agrément rule adds 3 on top of its alert: it is a fact, not a
      statistical signal;
    * each data-quality alert of the reference year adds 1 (a service that reports badly is
      hard to supervise from a distance);
    * each CPOM objective missed in the reference year adds 2;
    * an agrément ending by the end of the planned year adds 4 (the renewal file must be
      examined anyway), a certification missing or ending by then 3;
    * each full year since the last control (sur pièces or sur place) adds 1, up to
      ``control_years_cap``; a service never controlled in the product's records counts
      the cap.
    """
    alert_high: float = 3.0
    alert_medium: float = 2.0
    alert_low: float = 1.0
    persistent: float = 2.0
    rule_breach: float = 3.0
    data_quality: float = 1.0
    objective_missed: float = 2.0
    agrement_ending: float = 4.0
    certification_ending: float = 3.0
    year_since_control: float = 1.0
    control_years_cap: float = 5.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> "Weights":
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in (values or {}).items() if k in names})


#: French label of each weight, for the page, the PDF and the README.
WEIGHT_LABELS = {
    "alert_high": "par alerte ouverte de gravité élevée",
    "alert_medium": "par alerte ouverte de gravité moyenne",
    "alert_low": "par alerte ouverte de gravité faible",
    "persistent": "par alerte ouverte depuis 6 mois ou plus",
    "rule_breach": "par manquement à une règle (alerte « règle » ouverte)",
    "data_quality": "par alerte de qualité des données de l'année de référence",
    "objective_missed": "par objectif CPOM non atteint l'année de référence",
    "agrement_ending": "agrément arrivant à échéance d'ici la fin de l'année programmée",
    "certification_ending": "certification absente ou arrivant à échéance d'ici la fin de l'année programmée",
    "year_since_control": "par année écoulée depuis le dernier contrôle",
    "control_years_cap": "plafond d'années comptées (et valeur retenue sans contrôle enregistré)",
}


def weights_table(weights: Weights) -> list[tuple[str, str]]:
    """(French label, value) for every weight, in a stable order."""
    return [(WEIGHT_LABELS[k], fr_number(v, 0 if float(v).is_integer() else 1)) for k, v in weights.as_dict().items()]


def _plural(n: float, one: str, many: str) -> str:
    return one if n < 2 else many


def _pts(points: float) -> str:
    return f"{fr_number(points, 0 if float(points).is_integer() else 1)} pt" + ("s" if points >= 2 else "")


def _reasons(row, w: Weights) -> tuple[float, list[str]]:
    parts: list[tuple[float, str]] = []

    def add(count, weight, text):
        if count and weight:
            parts.append((float(count) * weight, f"{text} ({_pts(float(count) * weight)})"))

    for key, label in (("alerts_high", "élevée"), ("alerts_medium", "moyenne"), ("alerts_low", "faible")):
        n = int(row[key])
        add(n, getattr(w, key.replace("alerts_", "alert_")),
            f"{n} {_plural(n, 'alerte ouverte', 'alertes ouvertes')} de gravité {label}")
    n = int(row["persistent"])
    add(n, w.persistent, f"{n} {_plural(n, 'alerte ouverte', 'alertes ouvertes')} depuis 6 mois ou plus")
    n = int(row["rule_breaches"])
    add(n, w.rule_breach, f"{n} {_plural(n, 'manquement', 'manquements')} à une règle légale ou d'agrément")
    ref = row.get("reference_year")
    when = f" en {int(ref)}" if ref is not None and ref == ref else ""
    n = int(row["data_quality"])
    add(n, w.data_quality, f"{n} {_plural(n, 'alerte', 'alertes')} de qualité des données{when}")
    n = int(row["objectives_missed"])
    add(n, w.objective_missed,
        f"{n} {_plural(n, 'objectif CPOM non atteint', 'objectifs CPOM non atteints')}{when}")
    if bool(row["agrement_ending"]):
        add(1, w.agrement_ending, "agrément à renouveler d'ici la fin de l'année")
    if bool(row["certification_ending"]):
        add(1, w.certification_ending, "certification absente ou à échéance d'ici la fin de l'année")
    years = row["years_since_control"]
    if years is None or years != years:
        add(w.control_years_cap, w.year_since_control, "aucun contrôle enregistré")
    else:
        full = int(years)
        counted = min(float(full), w.control_years_cap)
        since = "moins d'un an" if full == 0 else f"{full} {_plural(full, 'an', 'ans')}"
        # always said, even at no point: a recent control is a reason too
        parts.append((counted * w.year_since_control,
                      f"dernier contrôle il y a {since} ({_pts(counted * w.year_since_control)})"))
    score = sum(p for p, _ in parts)
    return score, [t for _, t in parts]


def score_services(inputs: pd.DataFrame, weights: Weights = Weights(), capacity: int = 0) -> pd.DataFrame:
    """Rank services by score (highest first; ties: the longest without control, then the
    name), select the first ``capacity``. Returns OUTPUT_COLUMNS; ``reasons`` is one French
    sentence (« … ; … »), « aucun signal » when nothing adds points."""
    if inputs.empty:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    scored = [_reasons(r, weights) for _, r in inputs.iterrows()]
    out = inputs[["service_id", "service_name"]].copy()
    out["score"] = [round(s, 2) for s, _ in scored]
    out["reasons"] = ["; ".join(r) if r else "aucun signal" for _, r in scored]
    never = inputs["years_since_control"].isna()
    out["_since"] = inputs["years_since_control"].astype(float).fillna(float("inf")).where(~never, float("inf"))
    out = out.sort_values(["score", "_since", "service_name", "service_id"],
                          ascending=[False, False, True, True], kind="mergesort").reset_index(drop=True)
    out["rank"] = range(1, len(out) + 1)
    out["selected"] = out["rank"] <= int(capacity)
    return out[OUTPUT_COLUMNS]
