"""Triage of alerts by people: read, acknowledge, assign, comment, snooze, dismiss, reopen.

Every function takes the engine, the acting user (``User``, ``Scope``, ``Actor`` or e-mail,
reloaded from the database by :func:`monitor.accounts.access.resolve_actor`) and an alert id. Reads
refuse alerts outside the user's regions; writes also refuse read-only roles. Writes take
``expected_version``, the alert's ``version`` as the caller last saw it: if someone (a person
or the detection) changed the alert since, nothing is written and
:class:`~monitor.vocabulary.errors.ConcurrentModification` says who changed it and when. The same
protection holds in the race between reading and writing: the UPDATE carries
``WHERE version = <read version>`` (SQLAlchemy ``version_id_col``), so of two simultaneous
changes exactly one wins.

Each change writes an :class:`~monitor.store.models.AlertEvent` (who, when, from what status to
what status, why, details) in the same transaction; the audit tables refuse UPDATE and
DELETE at the database level.

A snooze (mise en sourdine) hides an alert from the default queue until a date; the alert
comes back by itself on that date (derived at read time, no job needed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.exc import StaleDataError

from monitor.vocabulary import dates as timefmt
from monitor.accounts.access import (Actor, actor_display, eligible_assignee, readable_regions, region_clause, require_read,
                           require_write, resolve_actor)
from monitor.vocabulary.errors import AccessDenied, ConcurrentModification, InvalidAction, NotFound, require_known
from monitor.vocabulary.formatting import label as indicator_label
from monitor.vocabulary.labels import CATEGORY_FR, EVENT_FR, SEVERITY_RANK, dismiss_reason_fr, severity_fr
from monitor.store import db
from monitor.store.models import Alert, AlertEvent, FollowUp, FollowUpAlert, FollowUpEvent, Region, Service, User, utcnow
from monitor.vocabulary.catalogue import DISMISS_REASONS
from alerts.lifecycle import SYSTEM_ACTOR
from alerts.silences import silence_for_dismissal
from monitor.vocabulary.statuses import (ALERT_STATUSES, FOLLOW_UP_ACTIVE, QUEUE, Action, AlertStatus, allowed,
                                         require_transition, status_label, target)

SNOOZE_MAX_DAYS = 366
MAX_TEXT = 5000


@dataclass
class AlertView:
    """An alert as a page or a command shows it, with its service, region and assignee."""
    id: int
    service_id: str
    service_name: str
    region_code: str
    region_name: str
    indicator: str
    indicator_label: str
    category: str
    category_label: str
    status: str
    status_label: str
    severity: str
    severity_label: str
    score: float
    detectors: str
    explanation: str
    opened_period: str
    last_period: str
    assignee_id: int | None
    assignee_email: str | None
    assignee_name: str | None
    snoozed_until: date | None
    snoozed: bool
    dismiss_reason: str | None
    dismiss_reason_label: str | None
    version: int
    updated_at: datetime
    follow_up_ids: list[int] = field(default_factory=list)
    reappearances: int = 0        # times detection reopened it: the anomaly came back (it flapped)


@dataclass
class HistoryEntry:
    """One line of an alert's history: an alert event or an event of a linked follow-up."""
    event_id: int
    at: datetime
    actor: str
    actor_name: str
    kind: str
    label: str
    from_value: str | None
    to_value: str | None
    comment: str | None
    details: dict | None = None
    period: str | None = None
    severity: str | None = None
    follow_up_id: int | None = None

    def summary_fr(self) -> str:
        where = f"suite n° {self.follow_up_id} : " if self.follow_up_id else ""
        text = f"{timefmt.fr_datetime(self.at)} — {self.actor_name} — {where}{self.label}"
        if self.from_value or self.to_value:
            text += f" ({self.from_value or '—'} → {self.to_value or '—'})"
        if self.period:
            text += f" [période {self.period}]"
        if self.comment:
            text += f" : {self.comment}"
        return text


# --------------------------------------------------------------------------- reading

_Assignee = aliased(User)


def _select_alerts():
    return (sa.select(Alert, Service.name, Service.region_code, Region.name, _Assignee.email, _Assignee.name)
            .join(Service, Service.service_id == Alert.service_id)
            .join(Region, Region.code == Service.region_code)
            .outerjoin(_Assignee, _Assignee.id == Alert.assignee_id))


def _view(row, today: date, follow_ups: dict[int, list[int]]) -> AlertView:
    a, service_name, region_code, region_name, assignee_email, assignee_name = row
    snoozed = a.snoozed_until is not None and a.snoozed_until > today
    return AlertView(
        id=a.id, service_id=a.service_id, service_name=service_name, region_code=region_code,
        region_name=region_name, indicator=a.indicator, indicator_label=indicator_label(a.indicator),
        category=a.category, category_label=CATEGORY_FR.get(a.category, a.category), status=a.status,
        status_label=status_label(a.status), severity=a.severity, severity_label=severity_fr(a.severity),
        score=float(a.score), detectors=a.detectors, explanation=a.explanation,
        opened_period=a.opened_period, last_period=a.last_period, assignee_id=a.assignee_id,
        assignee_email=assignee_email, assignee_name=assignee_name, snoozed_until=a.snoozed_until,
        snoozed=snoozed, dismiss_reason=a.dismiss_reason,
        dismiss_reason_label=dismiss_reason_fr(a.dismiss_reason), version=a.version,
        updated_at=timefmt.as_utc(a.updated_at), follow_up_ids=follow_ups.get(a.id, []))


def _follow_up_ids(session: Session, alert_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    if not alert_ids:
        return out
    for i in range(0, len(alert_ids), 1000):
        chunk = alert_ids[i:i + 1000]
        q = (sa.select(FollowUpAlert.alert_id, FollowUpAlert.follow_up_id)
             .where(FollowUpAlert.alert_id.in_(chunk)).order_by(FollowUpAlert.follow_up_id))
        for alert_id, fu_id in session.execute(q):
            out.setdefault(alert_id, []).append(fu_id)
    return out


def _not_found(alert_id: int) -> NotFound:
    return NotFound(f"Alerte n° {alert_id} introuvable.")


def get_alert(engine: sa.Engine, actor, alert_id: int, today: date | None = None) -> AlertView:
    """One alert with its service and region; refused outside the user's regions."""
    today = today or timefmt.today()
    with db.session_scope(engine) as s:
        who = resolve_actor(s, actor)
        row = s.execute(_select_alerts().where(Alert.id == alert_id)).one_or_none()
        if row is None:
            raise _not_found(alert_id)
        require_read(who, row[2])
        view = _view(row, today, _follow_up_ids(s, [alert_id]))
        view.reappearances = reappearances(s, alert_id)
        return view


def reappearances(session: Session, alert_id: int, upto_event: int | None = None) -> int:
    """How many times detection reopened the alert because the anomaly came back."""
    q = sa.select(sa.func.count()).select_from(AlertEvent).where(
        AlertEvent.alert_id == alert_id, AlertEvent.kind == "reopened", AlertEvent.actor == SYSTEM_ACTOR)
    if upto_event is not None:
        q = q.where(AlertEvent.id <= upto_event)
    return int(session.scalar(q) or 0)


def list_alerts(engine: sa.Engine, actor, *, statuses: tuple[str, ...] | None = QUEUE,
                region: str | None = None, service_id: str | None = None, min_severity: str | None = None,
                assignee_id: int | None = None, include_snoozed: bool = False,
                today: date | None = None, limit: int | None = None) -> list[AlertView]:
    """Alerts of the user's regions, most severe first.

    The default is the triage queue: open and acknowledged alerts that are not snoozed.
    ``statuses=None`` lists every status; ``include_snoozed`` shows snoozed alerts too.
    """
    today = today or timefmt.today()
    if statuses is not None:
        require_known(statuses, ALERT_STATUSES, "Statut")
    if min_severity is not None and min_severity not in SEVERITY_RANK:
        raise InvalidAction(f"Gravité inconnue : {min_severity} (low, medium ou high).")
    with db.session_scope(engine) as s:
        who = resolve_actor(s, actor)
        regions = readable_regions(who, region)
        q = _select_alerts()
        q = q.where(region_clause(Service.region_code, regions))
        if statuses is not None:
            q = q.where(Alert.status.in_(statuses))
        if service_id is not None:
            q = q.where(Alert.service_id == service_id)
        if min_severity is not None:
            q = q.where(Alert.severity.in_([k for k, v in SEVERITY_RANK.items()
                                            if v >= SEVERITY_RANK[min_severity]]))
        if assignee_id is not None:
            q = q.where(Alert.assignee_id == assignee_id)
        if not include_snoozed:
            q = q.where(sa.or_(Alert.snoozed_until.is_(None), Alert.snoozed_until <= today))
        rank = sa.case(SEVERITY_RANK, value=Alert.severity, else_=-1)
        q = q.order_by(rank.desc(), Alert.score.desc(), Alert.id)
        if limit is not None:
            q = q.limit(limit)
        rows = s.execute(q).all()
        fus = _follow_up_ids(s, [r[0].id for r in rows])
        return [_view(r, today, fus) for r in rows]


def alert_history(engine: sa.Engine, actor, alert_id: int) -> list[HistoryEntry]:
    """The alert's whole history in order: its own events and those of its follow-ups."""
    with db.session_scope(engine) as s:
        who = resolve_actor(s, actor)
        row = s.execute(sa.select(Service.region_code).join(Alert, Alert.service_id == Service.service_id)
                        .where(Alert.id == alert_id)).one_or_none()
        if row is None:
            raise _not_found(alert_id)
        require_read(who, row[0])
        names: dict[str, str] = {}

        def name(email: str) -> str:
            if email not in names:
                names[email] = actor_display(s, email)
            return names[email]

        entries: list[tuple[tuple, HistoryEntry]] = []
        for e in s.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)):
            frm, to = e.from_status, e.to_status
            entries.append(((timefmt.as_utc(e.at), 1, e.id), HistoryEntry(
                event_id=e.id, at=timefmt.as_utc(e.at), actor=e.actor, actor_name=name(e.actor), kind=e.kind,
                label=EVENT_FR.get(e.kind, e.kind), from_value=status_label(frm) if frm else None,
                to_value=status_label(to) if to else None, comment=e.comment, details=e.details,
                period=e.period, severity=e.severity)))
        fu_events = (sa.select(FollowUpEvent)
                     .join(FollowUpAlert, FollowUpAlert.follow_up_id == FollowUpEvent.follow_up_id)
                     .where(FollowUpAlert.alert_id == alert_id).order_by(FollowUpEvent.id))
        for e in s.scalars(fu_events):
            entries.append(((timefmt.as_utc(e.at), 0, e.id), HistoryEntry(
                event_id=e.id, at=timefmt.as_utc(e.at), actor=e.actor, actor_name=name(e.actor), kind=e.kind,
                label=EVENT_FR.get(e.kind, e.kind), from_value=e.from_value, to_value=e.to_value,
                comment=e.comment, follow_up_id=e.follow_up_id)))
        entries.sort(key=lambda x: x[0])      # at equal times, a follow-up's creation comes first
        return [e for _, e in entries]


# --------------------------------------------------------------------------- writing

Mutation = Callable[[Session, Actor, Alert, str, datetime], list[dict]]


def _load_for_change(session: Session, alert_id: int) -> tuple[Alert, str]:
    """The alert to change and its region (kept separate so tests can interleave two writers)."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise _not_found(alert_id)
    region = session.scalar(sa.select(Service.region_code).where(Service.service_id == alert.service_id))
    return alert, region


def _last_change(session: Session, alert: Alert) -> tuple[str, datetime]:
    """Who made the alert's latest change and when (the detection changes without an event)."""
    updated = timefmt.as_utc(alert.updated_at)
    ev = session.execute(sa.select(AlertEvent.actor, AlertEvent.at)
                         .where(AlertEvent.alert_id == alert.id, AlertEvent.kind != "comment")
                         .order_by(AlertEvent.id.desc()).limit(1)).one_or_none()
    if ev is not None and timefmt.as_utc(ev.at) >= updated - timedelta(seconds=1):
        return actor_display(session, ev.actor), timefmt.as_utc(ev.at)
    return actor_display(session, "détection"), updated


def conflict_message(what: str, who: str, when: datetime, reload: str = "rechargez-la") -> str:
    moment = (f"à {timefmt.fr_time(when)}" if timefmt.local(when).date() == timefmt.today()
              else f"le {timefmt.fr_datetime(when)}")
    return f"{what} a été modifiée par {who} {moment} ; {reload} avant de la modifier."


def _conflict(session: Session, alert: Alert) -> ConcurrentModification:
    who, when = _last_change(session, alert)
    return ConcurrentModification(conflict_message("Cette alerte", who, when))


def _conflict_after_race(engine: sa.Engine, alert_id: int) -> ConcurrentModification:
    with db.session_scope(engine) as s:
        alert = s.get(Alert, alert_id)
        if alert is None:
            return ConcurrentModification("Cette alerte a été supprimée entre-temps ; rechargez la page.")
        return _conflict(s, alert)


def check_version(session: Session, alert: Alert, expected_version: int | None) -> None:
    if expected_version is not None and alert.version != expected_version:
        raise _conflict(session, alert)


def _change(engine: sa.Engine, actor, alert_id: int, expected_version: int | None,
            mutate: Mutation) -> AlertView:
    try:
        with db.session_scope(engine) as s:
            who = resolve_actor(s, actor)
            alert, region = _load_for_change(s, alert_id)
            require_write(who, region)
            check_version(s, alert, expected_version)
            now = utcnow()
            events = mutate(s, who, alert, region, now)
            alert.updated_at = now
            s.flush()                      # UPDATE ... WHERE version = :read_version
            s.add_all([AlertEvent(alert_id=alert.id, actor=who.email, at=now, **e) for e in events])
    except StaleDataError:
        raise _conflict_after_race(engine, alert_id) from None
    return get_alert(engine, actor, alert_id)


def clean_text(value: str | None, what: str, required: bool = False) -> str | None:
    """Strip a person's text; refuse it empty when required, or longer than MAX_TEXT."""
    value = (value or "").strip()
    if not value:
        if required:
            raise InvalidAction(f"{what} est obligatoire.")
        return None
    if len(value) > MAX_TEXT:
        raise InvalidAction(f"{what} est trop long ({len(value)} caractères, {MAX_TEXT} au plus).")
    return value


def acknowledge(engine: sa.Engine, actor, alert_id: int, expected_version: int | None,
                comment: str | None = None) -> AlertView:
    """Prise en charge: open → acknowledged."""
    comment = clean_text(comment, "Le commentaire", False)

    def mutate(s, who, a, region, now):
        frm = a.status
        a.status = require_transition(Action.ACKNOWLEDGE, frm)
        return [dict(kind="acknowledged", from_status=frm, to_status=a.status, comment=comment)]

    return _change(engine, actor, alert_id, expected_version, mutate)


def assign(engine: sa.Engine, actor, alert_id: int, expected_version: int | None,
           assignee_id: int | None, comment: str | None = None) -> AlertView:
    """Give the alert to an agent of its region (None: nobody). Agents may only take it themselves."""
    comment = clean_text(comment, "Le commentaire", False)

    def mutate(s, who, a, region, now):
        require_transition(Action.ASSIGN, a.status)
        if a.assignee_id == assignee_id:
            raise InvalidAction("Cette alerte est déjà attribuée à cette personne." if assignee_id
                                else "Cette alerte n'est attribuée à personne.")
        if who.role == "agent" and a.assignee_id not in (None, who.id):
            raise AccessDenied("Accès refusé : seul un responsable peut retirer une alerte "
                               "attribuée à une autre personne.")
        target = eligible_assignee(s, who, assignee_id, region)
        before = s.get(User, a.assignee_id) if a.assignee_id else None
        a.assignee_id = assignee_id
        frm = before.email if before else None
        to = target.email if target else None
        text = comment or (f"attribuée à {target.name}" if target else "attribution retirée")
        return [dict(kind="assigned", comment=text, details={"from": frm, "to": to})]

    return _change(engine, actor, alert_id, expected_version, mutate)


def comment(engine: sa.Engine, actor, alert_id: int, text: str) -> AlertView:
    """Add a comment; it changes nothing else, so it needs no version and never conflicts."""
    text = clean_text(text, "Le commentaire", True)
    with db.session_scope(engine) as s:
        who = resolve_actor(s, actor)
        alert, region = _load_for_change(s, alert_id)
        require_write(who, region)
        s.add(AlertEvent(alert_id=alert.id, actor=who.email, at=utcnow(), kind="comment",
                         comment=text))
    return get_alert(engine, actor, alert_id)


def snooze(engine: sa.Engine, actor, alert_id: int, expected_version: int | None, until: date,
           reason: str, today: date | None = None) -> AlertView:
    """Hide the alert from the queue until ``until`` (exclusive): it comes back by itself that day."""
    today = today or timefmt.today()
    reason = clean_text(reason, "Le motif de la mise en sourdine", True)
    if not isinstance(until, date) or isinstance(until, datetime):
        raise InvalidAction("La date de fin de mise en sourdine doit être une date (AAAA-MM-JJ).")
    if until <= today:
        raise InvalidAction(f"La mise en sourdine doit se terminer après aujourd'hui ({timefmt.fr_date(today)}).")
    if until > today + timedelta(days=SNOOZE_MAX_DAYS):
        raise InvalidAction("Une mise en sourdine ne peut pas dépasser un an.")

    def mutate(s, who, a, region, now):
        require_transition(Action.SNOOZE, a.status)
        before = a.snoozed_until if a.snoozed_until and a.snoozed_until > today else None
        a.snoozed_until = until
        return [dict(kind="snoozed", comment=reason,
                     details={"until": until.isoformat(),
                              "previous": before.isoformat() if before else None})]

    return _change(engine, actor, alert_id, expected_version, mutate)


def unsnooze(engine: sa.Engine, actor, alert_id: int, expected_version: int | None,
             comment: str | None = None, today: date | None = None) -> AlertView:
    """End a snooze before its date."""
    today = today or timefmt.today()
    comment = clean_text(comment, "Le commentaire", False)

    def mutate(s, who, a, region, now):
        if a.snoozed_until is None or a.snoozed_until <= today:
            raise InvalidAction("Cette alerte n'est pas en sourdine.")
        before = a.snoozed_until
        a.snoozed_until = None
        return [dict(kind="unsnoozed", comment=comment, details={"previous": before.isoformat()})]

    return _change(engine, actor, alert_id, expected_version, mutate)


def _active_follow_ups(session: Session, alert_id: int) -> list[int]:
    return list(session.scalars(
        sa.select(FollowUp.id).join(FollowUpAlert, FollowUpAlert.follow_up_id == FollowUp.id)
        .where(FollowUpAlert.alert_id == alert_id, FollowUp.status.in_(FOLLOW_UP_ACTIVE))))


def dismiss(engine: sa.Engine, actor, alert_id: int, expected_version: int | None, reason: str,
            comment: str, until: date | None = None, today: date | None = None) -> AlertView:
    """Classer: a reason from the fixed list and a comment, both required. « Explication fournie
    par le service » and « déjà connu » also silence the alert's key (alerts.silences) until
    ``until`` (one year by default) or until the value worsens."""
    today = today or timefmt.today()
    if reason not in DISMISS_REASONS:
        choices = ", ".join(f"{k} ({v})" for k, v in DISMISS_REASONS.items())
        raise InvalidAction(f"Motif de classement inconnu : {reason} (motifs : {choices}).")
    comment = clean_text(comment, "Le commentaire du classement", True)

    def mutate(s, who, a, region, now):
        to = require_transition(Action.DISMISS, a.status)
        active = _active_follow_ups(s, a.id) if a.status == AlertStatus.FOLLOW_UP else []
        if active:
            raise InvalidAction(f"Cette alerte fait l'objet d'une suite en cours (n° {', '.join(map(str, active))}) : "
                                "clôturez ou abandonnez la suite avant de classer l'alerte.")
        frm = a.status
        a.status, a.dismiss_reason, a.snoozed_until = to, reason, None
        silence = silence_for_dismissal(s, who, a, reason, comment, until, today)
        details = {"reason": reason, "reason_label": DISMISS_REASONS[reason]}
        if silence is not None:
            details["silenced_until"] = silence.until.isoformat()
        return [dict(kind="dismissed", from_status=frm, to_status=to, comment=comment, details=details)]

    return _change(engine, actor, alert_id, expected_version, mutate)


def reopen(engine: sa.Engine, actor, alert_id: int, expected_version: int | None, comment: str) -> AlertView:
    """Manual reopening of a dismissed or resolved alert, with the reason why."""
    comment = clean_text(comment, "Le motif de la réouverture", True)

    def mutate(s, who, a, region, now):
        frm = a.status
        to = require_transition(Action.REOPEN, frm)
        details = {"previous_dismiss_reason": a.dismiss_reason} if a.dismiss_reason else None
        a.status, a.dismiss_reason, a.snoozed_until, a.normal_streak = to, None, None, 0
        return [dict(kind="reopened", from_status=frm, to_status=to, comment=comment, details=details)]

    return _change(engine, actor, alert_id, expected_version, mutate)


def mark_follow_up(session: Session, alert: Alert, follow_up_id: int, kind_label: str) -> dict:
    """Set an alert under follow-up (used by :func:`alerts.followups.create_follow_up`).

    Returns the event to record. Dismissed alerts cannot carry a follow-up.
    """
    if not allowed(Action.FOLLOW_UP, alert.status):
        raise InvalidAction(f"L'alerte n° {alert.id} est {status_label(alert.status)} : rouvrez-la avant "
                            "d'engager une suite.")
    details = {"follow_up_id": follow_up_id, "kind": kind_label}
    if alert.status == AlertStatus.FOLLOW_UP:
        return dict(kind="follow_up_linked", comment=f"rattachée à la suite n° {follow_up_id} ({kind_label})",
                    details=details)
    frm = alert.status
    alert.status, alert.snoozed_until = target(Action.FOLLOW_UP, frm), None
    return dict(kind="follow_up", from_status=frm, to_status=alert.status,
                comment=f"suite n° {follow_up_id} : {kind_label}", details=details)
