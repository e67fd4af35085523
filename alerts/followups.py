"""Follow-ups (suites): what the control unit decided to do about one or more alerts of a service.

Each follow-up has a kind with its legal reference, an owner, a due date, a status and notes.
Creating one sets its alerts to ``follow_up``; every change is a
:class:`~monitor.store.models.FollowUpEvent` (append-only). Region scoping and optimistic locking
work as in :mod:`alerts.triage`. A compliance request (demande de mise en conformité) has a
deadline of at most six months (art. D4622-51 du code du travail). The code offers no
"suspension" of an agrément: the SPST rules provide shortening and ending it only.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.exc import StaleDataError

from monitor.vocabulary import dates as timefmt
from monitor.accounts.access import (actor_display, eligible_assignee, readable_regions, region_clause, require_read,
                           require_write, resolve_actor)
from monitor.vocabulary.errors import ConcurrentModification, InvalidAction, NotFound, require_known
from alerts.safe_csv import safe_cell
from alerts.triage import check_version, clean_text, conflict_message, mark_follow_up
from monitor.store import db
from monitor.vocabulary.statuses import FOLLOW_UP_ACTIVE, FOLLOW_UP_CLOSED, FollowUpStatus, follow_up_label
from monitor.store.models import Alert, AlertEvent, FollowUp, FollowUpAlert, FollowUpEvent, Region, Service, User, utcnow


@dataclass(frozen=True)
class FollowUpKind:
    code: str
    label: str
    legal_reference: str
    max_months: int | None = None     # longest allowed delay between creation and due date


KINDS: dict[str, FollowUpKind] = {k.code: k for k in [
    FollowUpKind("demande_explications", "Demande d'explications au service",
                 "L4622-6-1 et D4622-48 (contrôle de l'agrément)"),
    FollowUpKind("controle_sur_pieces", "Contrôle sur pièces",
                 "L4622-6-1 et D4622-48 (contrôle de l'agrément)"),
    FollowUpKind("controle_sur_place", "Contrôle sur place",
                 "L4622-6-1 et D4622-48 (contrôle de l'agrément)"),
    FollowUpKind("lettre_observations", "Lettre d'observations",
                 "L4622-6-1 et D4622-48 (contrôle de l'agrément)"),
    FollowUpKind("mise_en_conformite", "Demande de mise en conformité",
                 "D4622-51", max_months=6),
    FollowUpKind("injonction", "Injonction de remédier à un dysfonctionnement grave", "L4622-9-2"),
    FollowUpKind("agrement_duree_reduite", "Agrément de durée réduite", "D4622-51"),
    FollowUpKind("fin_agrement", "Fin d'agrément", "D4622-51"),
]}


EXPORT_COLUMNS = ["follow_up_id", "service_id", "service_name", "region_code", "kind", "kind_label",
                  "legal_reference", "owner_email", "owner_name", "due_date", "status", "status_label",
                  "overdue", "alert_ids", "notes", "created_by", "created_at", "closed_at"]


@dataclass
class FollowUpView:
    id: int
    service_id: str
    service_name: str
    region_code: str
    region_name: str
    kind: str
    kind_label: str
    legal_reference: str | None
    owner_id: int | None
    owner_email: str | None
    owner_name: str | None
    due_date: date | None
    status: str
    status_label: str
    notes: str | None
    created_by: str
    created_at: datetime
    closed_at: datetime | None
    version: int
    overdue: bool
    days_overdue: int
    alert_ids: list[int] = field(default_factory=list)


def _kind(code: str) -> FollowUpKind:
    if code not in KINDS:
        raise InvalidAction(f"Type de suite inconnu : {code} (types : {', '.join(KINDS)}).")
    return KINDS[code]


def _check_due(kind: FollowUpKind, due: date | None, start: date, today: date) -> None:
    if due is None:
        raise InvalidAction("L'échéance de la suite est obligatoire.")
    if not isinstance(due, date) or isinstance(due, datetime):
        raise InvalidAction("L'échéance doit être une date (AAAA-MM-JJ).")
    if due < today:
        raise InvalidAction(f"L'échéance ({timefmt.fr_date(due)}) est déjà passée.")
    if kind.max_months is not None:
        limit = timefmt.add_months(start, kind.max_months)
        if due > limit:
            raise InvalidAction(
                f"Le délai d'une demande de mise en conformité ne peut dépasser {kind.max_months} mois "
                f"(art. {kind.legal_reference} du code du travail) : échéance au plus tard le "
                f"{timefmt.fr_date(limit)}.")


# --------------------------------------------------------------------------- reading

_Owner = aliased(User)


def _select():
    return (sa.select(FollowUp, Service.name, Service.region_code, Region.name, _Owner.email, _Owner.name)
            .join(Service, Service.service_id == FollowUp.service_id)
            .join(Region, Region.code == Service.region_code)
            .outerjoin(_Owner, _Owner.id == FollowUp.owner_id))


def _alert_ids(session: Session, ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    if ids:
        for fu_id, alert_id in session.execute(
                sa.select(FollowUpAlert.follow_up_id, FollowUpAlert.alert_id)
                .where(FollowUpAlert.follow_up_id.in_(ids)).order_by(FollowUpAlert.alert_id)):
            out.setdefault(fu_id, []).append(alert_id)
    return out


def _view(row, today: date, alerts: dict[int, list[int]]) -> FollowUpView:
    f, service_name, region_code, region_name, owner_email, owner_name = row
    kind = KINDS.get(f.kind)
    overdue = f.status in FOLLOW_UP_ACTIVE and f.due_date is not None and f.due_date < today
    return FollowUpView(
        id=f.id, service_id=f.service_id, service_name=service_name, region_code=region_code,
        region_name=region_name, kind=f.kind, kind_label=kind.label if kind else f.kind,
        legal_reference=f.legal_reference, owner_id=f.owner_id, owner_email=owner_email,
        owner_name=owner_name, due_date=f.due_date, status=f.status,
        status_label=follow_up_label(f.status), notes=f.notes, created_by=f.created_by,
        created_at=timefmt.as_utc(f.created_at), closed_at=timefmt.as_utc(f.closed_at), version=f.version,
        overdue=overdue, days_overdue=(today - f.due_date).days if overdue else 0,
        alert_ids=alerts.get(f.id, []))


def get_follow_up(engine: sa.Engine, actor, follow_up_id: int, today: date | None = None) -> FollowUpView:
    today = today or timefmt.today()
    with db.session_scope(engine) as s:
        who = resolve_actor(s, actor)
        row = s.execute(_select().where(FollowUp.id == follow_up_id)).one_or_none()
        if row is None:
            raise NotFound(f"Suite n° {follow_up_id} introuvable.")
        require_read(who, row[2], "cette suite")
        return _view(row, today, _alert_ids(s, [follow_up_id]))


def list_follow_ups(engine: sa.Engine, actor, *, statuses: tuple[str, ...] | None = FOLLOW_UP_ACTIVE,
                    region: str | None = None, service_id: str | None = None, owner_id: int | None = None,
                    alert_id: int | None = None, overdue_only: bool = False,
                    today: date | None = None) -> list[FollowUpView]:
    """Follow-ups of the user's regions: overdue ones first (most late first), then by due date."""
    today = today or timefmt.today()
    if statuses is not None:
        require_known(statuses, tuple(FollowUpStatus), "Statut de suite")
    with db.session_scope(engine) as s:
        who = resolve_actor(s, actor)
        regions = readable_regions(who, region)
        q = _select()
        q = q.where(region_clause(Service.region_code, regions))
        if statuses is not None:
            q = q.where(FollowUp.status.in_(statuses))
        if service_id is not None:
            q = q.where(FollowUp.service_id == service_id)
        if owner_id is not None:
            q = q.where(FollowUp.owner_id == owner_id)
        if alert_id is not None:
            q = q.where(FollowUp.id.in_(sa.select(FollowUpAlert.follow_up_id)
                                        .where(FollowUpAlert.alert_id == alert_id)))
        if overdue_only:
            q = q.where(FollowUp.status.in_(FOLLOW_UP_ACTIVE), FollowUp.due_date < today)
        rows = s.execute(q.order_by(FollowUp.id)).all()
        alerts = _alert_ids(s, [r[0].id for r in rows])
        views = [_view(r, today, alerts) for r in rows]
    views.sort(key=lambda v: (not v.overdue, v.due_date or date.max, v.id))
    return views


def follow_up_history(engine: sa.Engine, actor, follow_up_id: int) -> list[FollowUpEvent]:
    with db.session_scope(engine) as s:
        who = resolve_actor(s, actor)
        fu = s.get(FollowUp, follow_up_id)
        if fu is None:
            raise NotFound(f"Suite n° {follow_up_id} introuvable.")
        region = s.scalar(sa.select(Service.region_code).where(Service.service_id == fu.service_id))
        require_read(who, region, "cette suite")
        events = list(s.scalars(sa.select(FollowUpEvent).where(FollowUpEvent.follow_up_id == follow_up_id)
                                .order_by(FollowUpEvent.id)))
        s.expunge_all()
        return events


def export_follow_ups_csv(engine: sa.Engine, actor, **filters) -> str:
    """CSV of :func:`list_follow_ups`; no cell can start a spreadsheet formula."""
    rows = list_follow_ups(engine, actor, **filters)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EXPORT_COLUMNS)
    for v in rows:
        values = [v.id, v.service_id, v.service_name, v.region_code, v.kind, v.kind_label,
                  v.legal_reference or "", v.owner_email or "", v.owner_name or "",
                  v.due_date.isoformat() if v.due_date else "", v.status, v.status_label,
                  "oui" if v.overdue else "non", ";".join(map(str, v.alert_ids)), v.notes or "",
                  v.created_by, v.created_at.isoformat(timespec="seconds") if v.created_at else "",
                  v.closed_at.isoformat(timespec="seconds") if v.closed_at else ""]
        w.writerow([safe_cell(x) for x in values])
    return buf.getvalue()


# --------------------------------------------------------------------------- writing

def create_follow_up(engine: sa.Engine, actor, alert_ids: list[int], kind: str, owner_id: int | None,
                     due_date: date, notes: str | None = None,
                     expected_versions: dict[int, int] | None = None,
                     today: date | None = None) -> FollowUpView:
    """Engage a follow-up on alerts of one service; the alerts go to ``follow_up``.

    ``expected_versions`` maps alert id to the version the caller saw (optimistic locking).
    """
    today = today or timefmt.today()
    k = _kind(kind)
    notes = clean_text(notes, "Les notes")
    alert_ids = sorted(set(int(a) for a in alert_ids))
    if not alert_ids:
        raise InvalidAction("Une suite porte sur au moins une alerte.")
    _check_due(k, due_date, today, today)
    expected_versions = expected_versions or {}
    try:
        with db.session_scope(engine) as s:
            who = resolve_actor(s, actor)
            alerts = []
            for alert_id in alert_ids:
                a = s.get(Alert, alert_id)
                if a is None:
                    raise NotFound(f"Alerte n° {alert_id} introuvable.")
                alerts.append(a)
            services = {a.service_id for a in alerts}
            if len(services) > 1:
                raise InvalidAction("Les alertes d'une même suite doivent concerner un seul service.")
            service_id = services.pop()
            region = s.scalar(sa.select(Service.region_code).where(Service.service_id == service_id))
            require_write(who, region)
            for a in alerts:
                check_version(s, a, expected_versions.get(a.id))
            owner = eligible_assignee(s, who, owner_id, region, "cette suite")
            if owner is None:
                raise InvalidAction("Une suite doit avoir un responsable.")
            now = utcnow()
            fu = FollowUp(service_id=service_id, kind=k.code, legal_reference=k.legal_reference,
                          owner_id=owner.id, due_date=due_date, status=FollowUpStatus.A_FAIRE, notes=notes,
                          created_by=who.email, created_at=now, updated_at=now)
            s.add(fu)
            s.flush()
            s.add_all([FollowUpAlert(follow_up_id=fu.id, alert_id=a.id) for a in alerts])
            s.add(FollowUpEvent(follow_up_id=fu.id, actor=who.email, at=now, kind="created",
                                to_value=f"{k.label} ({k.legal_reference}) ; responsable {owner.email} ; "
                                         f"échéance {due_date.isoformat()}",
                                comment=notes))
            events = []
            for a in alerts:
                events.append((a, mark_follow_up(s, a, fu.id, k.label)))
                a.updated_at = now
            s.flush()
            s.add_all([AlertEvent(alert_id=a.id, actor=who.email, at=now, **e) for a, e in events])
            fu_id = fu.id
    except StaleDataError:
        raise ConcurrentModification("Une des alertes a été modifiée entre-temps ; rechargez-la avant "
                                     "d'engager la suite.") from None
    return get_follow_up(engine, actor, fu_id)


def _fu_conflict(session: Session, fu: FollowUp) -> ConcurrentModification:
    ev = session.execute(sa.select(FollowUpEvent.actor, FollowUpEvent.at)
                         .where(FollowUpEvent.follow_up_id == fu.id)
                         .order_by(FollowUpEvent.id.desc()).limit(1)).one()
    return ConcurrentModification(conflict_message("Cette suite", actor_display(session, ev.actor),
                                                   timefmt.as_utc(ev.at)))


_UNSET = object()


def update_follow_up(engine: sa.Engine, actor, follow_up_id: int, expected_version: int | None, *,
                     status: str | None = None, owner_id=_UNSET, due_date: date | None = None,
                     notes=_UNSET, comment: str | None = None, today: date | None = None) -> FollowUpView:
    """Change status, owner, due date or notes; one audit event per changed field.

    Abandoning a follow-up needs a comment saying why.
    """
    today = today or timefmt.today()
    comment = clean_text(comment, "Le commentaire")
    if status is not None and status not in tuple(FollowUpStatus):
        raise InvalidAction(f"Statut de suite inconnu : {status} (attendu : {', '.join(FollowUpStatus)}).")
    if status == "abandonnee" and not comment:
        raise InvalidAction("Le motif de l'abandon de la suite (commentaire) est obligatoire.")
    try:
        with db.session_scope(engine) as s:
            who = resolve_actor(s, actor)
            fu = s.get(FollowUp, follow_up_id)
            if fu is None:
                raise NotFound(f"Suite n° {follow_up_id} introuvable.")
            region = s.scalar(sa.select(Service.region_code).where(Service.service_id == fu.service_id))
            require_write(who, region, "cette suite")
            if expected_version is not None and fu.version != expected_version:
                raise _fu_conflict(s, fu)
            now = utcnow()
            changes: list[tuple[str, str | None, str | None]] = []
            if status is not None and status != fu.status:
                changes.append(("status", follow_up_label(fu.status), follow_up_label(status)))
                fu.status = status
                fu.closed_at = now if status in FOLLOW_UP_CLOSED else None
            if owner_id is not _UNSET and owner_id != fu.owner_id:
                new = eligible_assignee(s, who, owner_id, region, "cette suite")
                if new is None:
                    raise InvalidAction("Une suite doit avoir un responsable.")
                old = s.get(User, fu.owner_id) if fu.owner_id else None
                changes.append(("owner", old.email if old else None, new.email))
                fu.owner_id = new.id
            if due_date is not None and due_date != fu.due_date:
                created = timefmt.local(fu.created_at).date()
                _check_due(_kind(fu.kind), due_date, created, today)
                changes.append(("due_date", fu.due_date.isoformat() if fu.due_date else None,
                                due_date.isoformat()))
                fu.due_date = due_date
            if notes is not _UNSET:
                notes = clean_text(notes, "Les notes")
                if notes != fu.notes:
                    changes.append(("notes", fu.notes, notes))
                    fu.notes = notes
            if not changes:
                if comment:
                    s.add(FollowUpEvent(follow_up_id=fu.id, actor=who.email, at=now, kind="comment",
                                        comment=comment))
                else:
                    raise InvalidAction("Aucune modification à enregistrer.")
            else:
                fu.updated_at = now
                s.flush()
                s.add_all([FollowUpEvent(follow_up_id=fu.id, actor=who.email, at=now, kind=kind,
                                         from_value=frm, to_value=to, comment=comment)
                           for kind, frm, to in changes])
            fu_id = fu.id
    except StaleDataError:
        with db.session_scope(engine) as s:
            raise _fu_conflict(s, s.get(FollowUp, follow_up_id)) from None
    return get_follow_up(engine, actor, fu_id)
