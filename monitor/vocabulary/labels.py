"""French labels of alert states, event kinds, categories and severities (one place)."""
from __future__ import annotations

from monitor.vocabulary.catalogue import DISMISS_REASONS

SEVERITY_FR = {"low": "faible", "medium": "moyenne", "high": "élevée"}
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}
CATEGORY_FR = {"drift": "dérive", "peer_outlier": "écart aux pairs", "rule": "règle",
               "data_quality": "qualité des données"}
EVENT_FR = {
    "opened": "ouverture",
    "severity": "changement de gravité",
    "resolved": "résolution (données revenues à la normale)",
    "reopened": "réouverture",
    "withdrawn": "retrait (données corrigées)",
    "acknowledged": "prise en charge",
    "assigned": "attribution",
    "comment": "commentaire",
    "snoozed": "mise en sourdine",
    "unsnoozed": "fin de la mise en sourdine",
    "dismissed": "classement",
    "follow_up": "suite engagée",
    "follow_up_linked": "rattachement à une suite",
    # follow-up events
    "created": "création de la suite",
    "status": "changement de statut",
    "owner": "changement de responsable",
    "due_date": "changement d'échéance",
    "notes": "modification des notes",
}


def severity_fr(code: str | None) -> str:
    return SEVERITY_FR.get(code or "", code or "—")


def dismiss_reason_fr(code: str | None) -> str | None:
    return DISMISS_REASONS.get(code, code) if code else None
