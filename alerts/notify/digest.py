"""E-mail digests: per user, the new and changed alerts of their regions since their last digest.

Stages, as in Alertmanager: select (events after the user's cursor, in their regions, at or
above their severity, of the kinds that matter, not their own actions) → group (region, then
service, then alert) → dedup (an outbox row per user and event window, unique idempotency
key) → notify (:mod:`alerts.notify.smtp`, SMTP with retries).

* The cursor is ``User.last_digest_event_id``; it moves in the same transaction as the outbox
  insert, and only if nobody moved it meanwhile (compare-and-set), so two concurrent runs
  cannot queue the same window twice.
* A user is due when their period has elapsed since ``last_digest_at``, counted in calendar
  days in France: ``daily`` → another day; ``weekly`` → seven days later. ``off``, disabled
  accounts and accounts without any region get nothing.
* A user who never had a digest gets the events of the last period (one day or seven).
* On PostgreSQL the event window's upper bound is read under a SHARE lock on alert_events,
  which waits for the transactions still writing events: an event id below the bound can
  no longer appear after the digest was built, so no event is skipped.
"""
from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.vocabulary import dates as timefmt
from alerts.feedback import untouched_alerts
from alerts.triage import reappearances
from monitor.accounts.access import Actor, actor_display
from monitor.vocabulary.errors import ServiceError
from monitor.vocabulary.formatting import label as indicator_label
from monitor.vocabulary.labels import CATEGORY_FR, SEVERITY_RANK, severity_fr
from monitor.vocabulary.statuses import status_label
from monitor.config import env as config
from monitor.store import db
from monitor.store.models import Alert, AlertEvent, DigestOutbox, Region, Service, User, utcnow
from monitor.vocabulary.periods import PeriodError, period_label_fr
from monitor.vocabulary.catalogue import DISMISS_REASONS

log = logging.getLogger("alerts.notify.digest")

DIGEST_KINDS = ("opened", "reopened", "severity", "resolved", "acknowledged", "follow_up", "dismissed")
PERIOD_DAYS = {"daily": 1, "weekly": 7}
PERIOD_FR = {"daily": "quotidien", "weekly": "hebdomadaire"}
MAX_ITEMS = 200


@dataclass
class DigestItem:
    alert_id: int
    service_id: str
    service_name: str
    region_code: str
    region_name: str
    indicator_label: str
    category_label: str
    severity: str
    status: str
    explanation: str
    link: str
    is_new: bool = False
    changes: list[str] = field(default_factory=list)


@dataclass
class DigestDraft:
    user_id: int
    recipient: str
    name: str
    from_event_id: int
    to_event_id: int
    items: list[DigestItem]
    untouched: list = field(default_factory=list)   # managers: alerts nobody acted on for too long
    subject: str = ""
    body_text: str = ""
    body_html: str = ""

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.user_id, self.from_event_id, self.to_event_id)

    @property
    def new_count(self) -> int:
        return sum(i.is_new for i in self.items)


@dataclass
class QueueReport:
    queued: list[DigestDraft] = field(default_factory=list)
    nothing_new: int = 0
    not_due: int = 0
    no_region: int = 0
    concurrent: int = 0


@dataclass
class DigestRun:
    """What one ``digest send`` did (the scheduler records the integer fields)."""
    prepared: int = 0
    sent: int = 0
    failed: int = 0
    waiting: int = 0              # failed or not attempted: sent on the next run
    interrupted: int = 0
    not_due: int = 0
    nothing_new: int = 0
    no_region: int = 0
    dry_run: bool = False
    recipients: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    drafts: list[DigestDraft] = field(default_factory=list)


class DigestDeliveryError(ServiceError):
    """Some digests could not be sent; they stay in the outbox for the next run."""

    def __init__(self, message: str, run: DigestRun):
        super().__init__(message)
        self.run = run


def idempotency_key(user_id: int, from_id: int, to_id: int) -> str:
    return f"user{user_id}-events{from_id}-{to_id}"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n <= 1 else (many or one + 's')}"


# --------------------------------------------------------------------------- selection

def event_snapshot(engine: sa.Engine, lock: bool = True) -> int:
    """The highest alert event id whose transaction is over (see the module docstring).

    Without the privilege to lock alert_events (an insert-only database role), falls back to
    the plain maximum and logs a warning.
    """
    if lock and engine.dialect.name == "postgresql":
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("SET LOCAL lock_timeout = '300s'"))
                conn.execute(sa.text("LOCK TABLE alert_events IN SHARE MODE"))
                return int(conn.execute(sa.select(sa.func.max(AlertEvent.id))).scalar() or 0)
        except sa.exc.DBAPIError as exc:
            log.warning("verrou sur alert_events impossible (%s) : borne des récapitulatifs sans verrou",
                        str(exc.orig).strip())
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(AlertEvent.id))).scalar() or 0)


def is_due(user: User, now: datetime) -> bool:
    if user.digest not in PERIOD_DAYS or not user.active:
        return False
    last = timefmt.as_utc(user.last_digest_at)
    if last is None:
        return True
    return timefmt.today(now) >= timefmt.today(last) + timedelta(days=PERIOD_DAYS[user.digest])


def window_start(session: Session, user: User, now: datetime) -> int:
    """The cursor, or for a first digest the last event before the user's period."""
    if user.last_digest_event_id is not None:
        return int(user.last_digest_event_id)
    since = now - timedelta(days=PERIOD_DAYS.get(user.digest, 1))
    return int(session.scalar(sa.select(sa.func.max(AlertEvent.id)).where(AlertEvent.at < since)) or 0)


def _period_fr(period: str | None) -> str:
    if not period:
        return ""
    try:
        return period_label_fr(period)
    except PeriodError:
        return period


def _change_fr(session: Session, e: AlertEvent, names: dict[str, str]) -> str:
    if e.actor not in names:
        names[e.actor] = actor_display(session, e.actor)
    who = names[e.actor]
    when = f" ({_period_fr(e.period)})" if e.period else ""
    details = e.details or {}
    if e.kind == "opened":
        return f"nouvelle alerte{when}"
    if e.kind == "reopened":
        if e.actor == "détection":
            n = reappearances(session, e.alert_id, upto_event=e.id)
            again = f" ({n}e réapparition)" if n > 1 else ""
            return f"rouverte : l'anomalie est revenue{when}{again}"
        return f"rouverte par {who} : {e.comment}"
    if e.kind == "severity":
        return f"gravité passée à « {severity_fr(e.severity)} »{when}"
    if e.kind == "resolved":
        return f"résolue : {e.comment}{when}" if e.comment else f"résolue{when}"
    if e.kind == "withdrawn":
        return f"retirée : {e.comment}"
    if e.kind == "acknowledged":
        return f"prise en charge par {who}"
    if e.kind == "follow_up":
        return f"suite engagée par {who} : {details.get('kind') or e.comment}"
    if e.kind == "dismissed":
        reason = DISMISS_REASONS.get(details.get("reason"), details.get("reason") or "")
        return f"classée par {who} ({reason.lower()}) : {e.comment}"
    return f"{e.kind} par {who}"


def collect(session: Session, user: User, from_id: int, to_id: int, base_url: str) -> list[DigestItem]:
    """The alerts with events in (from_id, to_id] the user should hear about, grouped and sorted."""
    actor = Actor.from_user(user)
    if actor.regions is not None and not actor.regions:
        return []
    severities = [k for k, v in SEVERITY_RANK.items() if v >= SEVERITY_RANK.get(user.min_severity, 1)]
    q = (sa.select(AlertEvent, Alert, Service.name, Service.region_code, Region.name)
         .join(Alert, Alert.id == AlertEvent.alert_id)
         .join(Service, Service.service_id == Alert.service_id)
         .join(Region, Region.code == Service.region_code)
         .where(AlertEvent.id > from_id, AlertEvent.id <= to_id, AlertEvent.kind.in_(DIGEST_KINDS),
                AlertEvent.actor != user.email, Alert.severity.in_(severities))
         .order_by(AlertEvent.id))
    if actor.regions is not None:
        q = q.where(Service.region_code.in_(actor.regions))
    items: dict[int, DigestItem] = {}
    names: dict[str, str] = {}
    for e, a, service_name, region_code, region_name in session.execute(q):
        item = items.get(a.id)
        if item is None:
            item = items[a.id] = DigestItem(
                alert_id=a.id, service_id=a.service_id, service_name=service_name, region_code=region_code,
                region_name=region_name, indicator_label=indicator_label(a.indicator),
                category_label=CATEGORY_FR.get(a.category, a.category), severity=a.severity,
                status=a.status, explanation=a.explanation, link=f"{base_url}/alerte?id={a.id}")
        item.is_new = item.is_new or e.kind == "opened"
        item.changes.append(_change_fr(session, e, names))
    return sorted(items.values(), key=lambda i: (i.region_name, i.service_name, i.service_id,
                                                 -SEVERITY_RANK.get(i.severity, 0), i.alert_id))


# --------------------------------------------------------------------------- rendering

def _groups(items: list[DigestItem]):
    """[(region label, [(service label, [items])])] in the items' order."""
    out: list[tuple[str, list[tuple[str, list[DigestItem]]]]] = []
    for it in items:
        region = f"{it.region_name} ({it.region_code})"
        service = f"{it.service_name} — SIRET {it.service_id}"
        if not out or out[-1][0] != region:
            out.append((region, []))
        services = out[-1][1]
        if not services or services[-1][0] != service:
            services.append((service, []))
        services[-1][1].append(it)
    return out


def render(user: User, items: list[DigestItem], now: datetime, base_url: str,
           untouched: list | None = None) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of a digest, in French; user-supplied text escaped in HTML.
    ``untouched``: for a manager, the alerts of their regions nobody has acted on for too long."""
    untouched = untouched or []
    days = config.untouched_days()
    late_lines = [f"  * n° {r.id} — {r.name} ({r.region_code}) — {indicator_label(r.indicator)} — gravité "
                  f"{severity_fr(r.severity)} — ouverte le {timefmt.fr_date(r.created_at)} : {base_url}/alerte?id={r.id}"
                  for r in untouched]
    late_title = f"Alertes sans aucune action depuis {days} jours ou plus : {len(untouched)}"
    shown, hidden = items[:MAX_ITEMS], max(0, len(items) - MAX_ITEMS)
    new = sum(i.is_new for i in items)
    freq = PERIOD_FR.get(user.digest, "")
    threshold = f"gravité {severity_fr(user.min_severity)} et plus" if user.min_severity != "low" \
        else "toutes gravités"
    day = timefmt.fr_date(now)
    subject = (f"Supervision des SPSTI – récapitulatif {freq} du {day} : "
               f"{plural(len(items), 'alerte')} dont {plural(new, 'nouvelle')}"
               + (f", {len(untouched)} sans action depuis {days} jours" if untouched else ""))
    intro = (f"Voici les alertes nouvelles ou modifiées dans vos régions depuis votre dernier "
             f"récapitulatif ({threshold}) : {plural(len(items), 'alerte')}, dont {plural(new, 'nouvelle')}.")
    footer = (f"Vous recevez ce récapitulatif {freq} ({threshold}) à l'adresse {user.email}. "
              "Pour changer la fréquence ou le seuil, ou pour vous désabonner, adressez-vous "
              "à l'administrateur du tableau de bord.")

    lines = [f"Bonjour {user.name},", "", intro, ""]
    for region, services in _groups(shown):
        lines += [region.upper(), "=" * len(region), ""]
        for service, its in services:
            lines += [service, ""]
            for it in its:
                tag = "[Nouvelle] " if it.is_new else ""
                lines.append(f"  * {tag}{it.indicator_label} — {it.category_label} — gravité "
                             f"{severity_fr(it.severity)} — {status_label(it.status)}")
                lines.append(f"    {it.explanation}")
                lines.append(f"    Évolution : {' ; '.join(it.changes)}")
                lines.append(f"    Voir l'alerte : {it.link}")
                lines.append("")
    if hidden:
        lines += [f"… et {plural(hidden, 'autre alerte', 'autres alertes')} : voir le tableau de bord.", ""]
    if untouched:
        lines += [late_title, *late_lines, ""]
    lines += ["-- ", f"Tableau de bord : {base_url}", footer, ""]
    text = "\n".join(lines)

    e = html.escape
    parts = ['<!DOCTYPE html>', '<html lang="fr"><head><meta charset="utf-8">',
             f'<title>{e(subject)}</title></head>',
             '<body style="font-family: Marianne, Arial, sans-serif; color: #161616; max-width: 760px">',
             f'<p>Bonjour {e(user.name)},</p>', f'<p>{e(intro)}</p>']
    for region, services in _groups(shown):
        parts.append(f'<h2 style="border-bottom: 2px solid #000091; color: #000091">{e(region)}</h2>')
        for service, its in services:
            parts.append(f'<h3 style="margin-bottom: 4px">{e(service)}</h3><ul>')
            for it in its:
                tag = '<strong style="color: #ce0500">Nouvelle</strong> · ' if it.is_new else ""
                parts.append(
                    f'<li style="margin-bottom: 10px">{tag}<strong>{e(it.indicator_label)}</strong> — '
                    f'{e(it.category_label)} — gravité {e(severity_fr(it.severity))} — {e(status_label(it.status))}'
                    f'<br>{e(it.explanation)}'
                    f'<br><em>Évolution :</em> {e(" ; ".join(it.changes))}'
                    f'<br><a href="{e(it.link, quote=True)}">Voir l\'alerte n° {it.alert_id}</a></li>')
            parts.append('</ul>')
    if hidden:
        parts.append(f'<p>… et {e(plural(hidden, "autre alerte", "autres alertes"))} : '
                     f'<a href="{e(base_url, quote=True)}">voir le tableau de bord</a>.</p>')
    if untouched:
        parts.append(f'<h2 style="color: #ce0500">{e(late_title)}</h2><ul>')
        for r in untouched:
            parts.append(f'<li><a href="{e(base_url, quote=True)}/alerte?id={r.id}">n° {r.id}</a> — {e(r.name)} '
                         f'({e(r.region_code)}) — {e(indicator_label(r.indicator))} — gravité '
                         f'{e(severity_fr(r.severity))} — ouverte le {e(timefmt.fr_date(r.created_at))}</li>')
        parts.append('</ul>')
    parts += ['<hr>', f'<p><a href="{e(base_url, quote=True)}">Tableau de bord</a></p>',
              f'<p style="font-size: 12px; color: #666">{e(footer)}</p>', '</body></html>']
    return subject, text, "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- building

def _subscribers(session: Session) -> list[int]:
    return list(session.scalars(sa.select(User.id).where(User.active.is_(True), User.digest.in_(PERIOD_DAYS))
                                .order_by(User.id)))


def _draft(session: Session, user: User, now: datetime, to_id: int, base_url: str,
           report: QueueReport) -> DigestDraft | None:
    actor = Actor.from_user(user)
    if actor.regions is not None and not actor.regions:
        report.no_region += 1
        return None
    if not is_due(user, now):
        report.not_due += 1
        return None
    from_id = window_start(session, user, now)
    items = collect(session, user, from_id, to_id, base_url) if to_id > from_id else []
    draft = DigestDraft(user.id, user.email, user.name, from_id, max(from_id, to_id), items)
    if user.role == "manager":      # alerts of their regions left untouched are flagged to managers
        draft.untouched = untouched_alerts(session, actor, config.untouched_days(), now)
    if items or draft.untouched:
        draft.subject, draft.body_text, draft.body_html = render(user, items, now, base_url, draft.untouched)
    else:
        report.nothing_new += 1
    return draft


def build_digests(engine: sa.Engine, now: datetime | None = None, base_url: str | None = None) -> QueueReport:
    """What a run would queue, without writing anything (``digest send --dry-run``)."""
    now = timefmt.as_utc(now) if now else datetime.now(timezone.utc)
    base_url = (base_url or config.base_url()).rstrip("/")
    to_id = event_snapshot(engine, lock=False)
    report = QueueReport()
    with db.session_scope(engine) as s:
        for uid in _subscribers(s):
            draft = _draft(s, s.get(User, uid), now, to_id, base_url, report)
            if draft is not None and (draft.items or draft.untouched):
                report.queued.append(draft)
        s.rollback()
    return report


def queue_digests(engine: sa.Engine, now: datetime | None = None, base_url: str | None = None) -> QueueReport:
    """Write one outbox row per due user with something new, and move their cursor with it."""
    now = timefmt.as_utc(now) if now else datetime.now(timezone.utc)
    base_url = (base_url or config.base_url()).rstrip("/")
    to_id = event_snapshot(engine)
    report = QueueReport()
    with db.session_scope(engine) as s:
        user_ids = _subscribers(s)
    for uid in user_ids:
        try:
            _queue_one(engine, uid, now, to_id, base_url, report)
        except sa.exc.IntegrityError:        # the same window is already in the outbox
            report.concurrent += 1
    return report


def _queue_one(engine: sa.Engine, uid: int, now: datetime, to_id: int, base_url: str,
               report: QueueReport) -> None:
    with db.session_scope(engine) as s:
        user = s.get(User, uid)
        cursor = user.last_digest_event_id
        draft = _draft(s, user, now, to_id, base_url, report)
        if draft is None:
            return
        same_cursor = (User.last_digest_event_id.is_(None) if cursor is None
                       else User.last_digest_event_id == cursor)
        moved = s.execute(sa.update(User).where(User.id == uid, same_cursor)
                          .values(last_digest_event_id=draft.to_event_id, last_digest_at=now)
                          .execution_options(synchronize_session=False))
        if moved.rowcount != 1:          # another run took this window
            report.concurrent += 1
            s.rollback()
            return
        if draft.items or draft.untouched:
            s.add(DigestOutbox(user_id=uid, idempotency_key=draft.idempotency_key,
                               from_event_id=draft.from_event_id, to_event_id=draft.to_event_id,
                               recipient=user.email, subject=draft.subject, body_text=draft.body_text,
                               body_html=draft.body_html, alert_count=len(draft.items),
                               status="pending", attempts=0, created_at=utcnow()))
            s.flush()
            report.queued.append(draft)


def send_digests(engine: sa.Engine, dry_run: bool = False, *, settings=None, now: datetime | None = None,
                 base_url: str | None = None, fail_on_error: bool = True, **send_options) -> DigestRun:
    """``digest send``: queue the due digests, then send every pending one over SMTP.

    ``dry_run`` builds what would be queued without writing or sending anything. When some
    digests could not be sent, raises :class:`DigestDeliveryError` (``fail_on_error``) after
    recording them: they stay in the outbox and the next run sends them.
    """
    from alerts.notify.smtp import outbox_pending, send_pending

    if dry_run:
        report = build_digests(engine, now=now, base_url=base_url)
        waiting = outbox_pending(engine)
        return DigestRun(prepared=len(report.queued), waiting=len(waiting), not_due=report.not_due,
                         nothing_new=report.nothing_new, no_region=report.no_region, dry_run=True,
                         recipients=[d.recipient for d in report.queued], drafts=report.queued)
    queued = queue_digests(engine, now=now, base_url=base_url)
    sent = send_pending(engine, settings, **send_options)
    run = DigestRun(prepared=len(queued.queued), sent=len(sent.sent), failed=len(sent.failed),
                    waiting=len(sent.failed) + sent.not_attempted, interrupted=sent.interrupted,
                    not_due=queued.not_due, nothing_new=queued.nothing_new, no_region=queued.no_region,
                    recipients=[r for _, r in sent.sent], errors=[e for _, _, e in sent.failed],
                    drafts=queued.queued)
    if run.failed and fail_on_error:
        raise DigestDeliveryError(f"{run.waiting} récapitulatif(s) non envoyé(s) : {run.errors[-1]} ; "
                                  "ils seront renvoyés au prochain passage", run)
    return run
