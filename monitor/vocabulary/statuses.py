"""The states of an alert and of a follow-up, and the transitions allowed between them.

One vocabulary for the service layer, the CLI, the pages and the digests: a page asks
:func:`allowed` which actions to offer, the service layer checks the same table with
:func:`require_transition` before it changes anything.

    open ──ack──► acknowledged ──follow-up──► follow_up
      │               │                          │
      └──dismiss──────┴──────────dismiss─────────┴──► dismissed ──reopen──► open
    (detection) open / acknowledged / follow_up without an active suite ──► resolved ──reopen──► open

The values are the strings stored in the database and written in the export (CONTRACT.md),
so a member compares equal to its string: ``AlertStatus.OPEN == "open"``.
"""
from __future__ import annotations

from enum import StrEnum

from monitor.vocabulary.errors import InvalidAction


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    FOLLOW_UP = "follow_up"
    DISMISSED = "dismissed"
    RESOLVED = "resolved"

    @property
    def label(self) -> str:
        """French label, lower case (« prise en charge »)."""
        return _ALERT_FR[self]

    @property
    def title(self) -> str:
        """French label for a table header or a badge (« Prise en charge »)."""
        text = _ALERT_FR[self]
        return text[:1].upper() + text[1:]


_ALERT_FR = {
    AlertStatus.OPEN: "ouverte",
    AlertStatus.ACKNOWLEDGED: "prise en charge",
    AlertStatus.FOLLOW_UP: "suite engagée",
    AlertStatus.DISMISSED: "classée",
    AlertStatus.RESOLVED: "résolue",
}

#: Every status, in lifecycle order (the export's and the filters' order).
ALERT_STATUSES: tuple[AlertStatus, ...] = tuple(AlertStatus)
#: What the queue shows by default: alerts nobody has finished with.
QUEUE: tuple[AlertStatus, ...] = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)
#: Alerts detection keeps updating while the anomaly persists.
ACTIVE: tuple[AlertStatus, ...] = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, AlertStatus.FOLLOW_UP)
#: Alerts detection resolves by itself once the data are back to normal (an alert under an
#: active follow-up stays until the follow-up ends).
AUTO_RESOLVABLE: tuple[AlertStatus, ...] = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


class Action(StrEnum):
    """What a person (or detection, for ``resolve``) can do to an alert."""
    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    SNOOZE = "snooze"
    DISMISS = "dismiss"
    REOPEN = "reopen"
    FOLLOW_UP = "follow_up"
    RESOLVE = "resolve"


#: action -> (statuses it applies to, status it leads to; None: the status does not change,
#: French infinitive used in the refusal message).
TRANSITIONS: dict[Action, tuple[tuple[AlertStatus, ...], AlertStatus | None, str]] = {
    Action.ACKNOWLEDGE: ((AlertStatus.OPEN,), AlertStatus.ACKNOWLEDGED, "prendre en charge"),
    Action.ASSIGN: (ACTIVE, None, "attribuer"),
    Action.SNOOZE: (QUEUE, None, "mettre en sourdine"),
    Action.DISMISS: (ACTIVE + (AlertStatus.RESOLVED,), AlertStatus.DISMISSED, "classer"),
    Action.REOPEN: ((AlertStatus.DISMISSED, AlertStatus.RESOLVED), AlertStatus.OPEN, "rouvrir"),
    Action.FOLLOW_UP: (ACTIVE + (AlertStatus.RESOLVED,), AlertStatus.FOLLOW_UP, "engager une suite sur"),
    Action.RESOLVE: (ACTIVE, AlertStatus.RESOLVED, "résoudre"),
}


def allowed(action: Action | str, status: str) -> bool:
    """Whether ``action`` may be applied to an alert in ``status``."""
    return status in TRANSITIONS[Action(action)][0]


def target(action: Action | str, status: str) -> AlertStatus:
    """The status an alert in ``status`` has after ``action``."""
    to = TRANSITIONS[Action(action)][1]
    return AlertStatus(status) if to is None else to


def require_transition(action: Action | str, status: str) -> AlertStatus:
    """The status after ``action``, or :class:`InvalidAction` naming the statuses allowed."""
    action = Action(action)
    sources, _, verb = TRANSITIONS[action]
    if status not in sources:
        ok = ", ".join(s.label for s in sources)
        raise InvalidAction(f"Impossible de {verb} une alerte au statut « {status_label(status)} » "
                            f"(statuts permis : {ok}).")
    return target(action, status)


def status_label(code: str | None) -> str:
    """French label of a stored status code; the code itself if unknown, « — » if empty."""
    if not code:
        return "—"
    try:
        return AlertStatus(code).label
    except ValueError:
        return code


class FollowUpStatus(StrEnum):
    A_FAIRE = "a_faire"
    EN_COURS = "en_cours"
    TERMINEE = "terminee"
    ABANDONNEE = "abandonnee"

    @property
    def label(self) -> str:
        return _FOLLOW_UP_FR[self]


_FOLLOW_UP_FR = {
    FollowUpStatus.A_FAIRE: "À faire",
    FollowUpStatus.EN_COURS: "En cours",
    FollowUpStatus.TERMINEE: "Terminée",
    FollowUpStatus.ABANDONNEE: "Abandonnée",
}

#: A follow-up still being carried out: it keeps its alerts from resolving.
FOLLOW_UP_ACTIVE: tuple[FollowUpStatus, ...] = (FollowUpStatus.A_FAIRE, FollowUpStatus.EN_COURS)
FOLLOW_UP_CLOSED: tuple[FollowUpStatus, ...] = (FollowUpStatus.TERMINEE, FollowUpStatus.ABANDONNEE)


def status_title(code: str | None) -> str:
    """French label of a stored status code, capitalised for a badge or a table."""
    text = status_label(code)
    return text[:1].upper() + text[1:]


def follow_up_label(code: str | None) -> str:
    """French label of a stored follow-up status code; the code itself if unknown."""
    if not code:
        return "—"
    try:
        return FollowUpStatus(code).label
    except ValueError:
        return code
