"""Static reference data: regions and the indicator catalogue.

These are seeded into the database by the initial migration and kept here as the single
source of truth for code that needs them without a database round-trip.
"""
from __future__ import annotations

from dataclasses import dataclass

# INSEE region code -> (name, directorate). DRIEETS for Île-de-France, DEETS overseas,
# Guyane's labour functions sit in a prefecture directorate (domain.md §3).
REGIONS: dict[str, tuple[str, str]] = {
    "11": ("Île-de-France", "DRIEETS"),
    "24": ("Centre-Val de Loire", "DREETS"),
    "27": ("Bourgogne-Franche-Comté", "DREETS"),
    "28": ("Normandie", "DREETS"),
    "32": ("Hauts-de-France", "DREETS"),
    "44": ("Grand Est", "DREETS"),
    "52": ("Pays de la Loire", "DREETS"),
    "53": ("Bretagne", "DREETS"),
    "75": ("Nouvelle-Aquitaine", "DREETS"),
    "76": ("Occitanie", "DREETS"),
    "84": ("Auvergne-Rhône-Alpes", "DREETS"),
    "93": ("Provence-Alpes-Côte d'Azur", "DREETS"),
    "94": ("Corse", "DREETS"),
    "01": ("Guadeloupe", "DEETS"),
    "02": ("Martinique", "DEETS"),
    "03": ("Guyane", "DGCOPOP"),
    "04": ("La Réunion", "DEETS"),
    "06": ("Mayotte", "DEETS"),
}


@dataclass(frozen=True)
class Indicator:
    code: str
    label_fr: str
    label_en: str
    unit: str            # human unit, French
    kind: str            # proportion | rate | ratio | level | count
    worse: str           # lower | higher | outside
    scale: float = 1.0   # value = scale * numerator / denominator when counts are given
    lower_bound: float | None = None   # physically possible range of the value
    upper_bound: float | None = None
    band: tuple[float, float] | None = None   # acceptable band for worse == "outside"

    @property
    def has_counts(self) -> bool:
        return self.kind in ("proportion", "rate")


CATALOGUE: dict[str, Indicator] = {i.code: i for i in [
    Indicator("vip_init_in_delay_rate", "Taux de VIP initiales dans le délai",
              "Initial VIPs within 3 months", "proportion", "proportion", "lower",
              1.0, 0.0, 1.0),
    Indicator("vip_init_median_delay_days", "Délai médian avant VIP initiale",
              "Median delay to initial VIP", "jours", "level", "higher", 1.0, 0.0, 3650.0),
    Indicator("sir_overdue_rate", "Part des salariés en SIR hors périodicité",
              "SIR workers overdue", "proportion", "proportion", "higher", 1.0, 0.0, 1.0),
    Indicator("reprise_within_8d_rate", "Taux de visites de reprise sous 8 jours",
              "Return-to-work visits within 8 days", "proportion", "proportion", "lower",
              1.0, 0.0, 1.0),
    Indicator("workers_per_physician_fte", "Salariés suivis par ETP de médecin",
              "Workers per physician FTE", "salariés par ETP", "ratio", "higher",
              1.0, 0.0, 1e6),
    Indicator("physician_fte", "ETP de médecins du travail", "Physician FTE", "ETP",
              "level", "lower", 1.0, 0.0, 1e5),
    Indicator("nurse_fte", "ETP d'infirmiers en santé au travail", "Nurse FTE", "ETP",
              "level", "lower", 1.0, 0.0, 1e5),
    Indicator("pdp_cases_per_1000", "Situations PDP pour 1 000 salariés",
              "PDP cases per 1,000 workers", "‰", "rate", "lower", 1000.0, 0.0, 1000.0),
    Indicator("prereprise_per_1000", "Visites de pré-reprise pour 1 000 salariés",
              "Pre-return visits per 1,000 workers", "‰", "rate", "lower", 1000.0, 0.0, 1000.0),
    Indicator("amt_per_1000", "Actions en milieu de travail pour 1 000 salariés",
              "Workplace actions per 1,000 workers", "‰", "rate", "lower", 1000.0, 0.0, 1000.0),
    Indicator("complaints_per_10k", "Réclamations pour 10 000 salariés",
              "Complaints per 10,000 workers", "pour 10 000", "rate", "higher",
              10000.0, 0.0, 10000.0),
    Indicator("cotisation_vs_cmn_ratio", "Cotisation / coût moyen national",
              "Fee vs national average cost", "ratio", "ratio", "outside", 1.0, 0.0, 20.0,
              band=(0.8, 1.2)),
    Indicator("workers_followed", "Salariés suivis", "Workers followed", "salariés",
              "count", "lower", 1.0, 0.0, 5e6),
]}

PROPORTION_KINDS = ("proportion",)

DISMISS_REASONS = {
    "faux_positif": "Faux positif",
    "explication_service": "Explication fournie par le service",
    "erreur_donnees": "Erreur de données",
    "deja_connu": "Déjà connu",
}
