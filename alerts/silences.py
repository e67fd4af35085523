"""Silences, after Alertmanager's: a known anomaly stops coming back as a new alert.

Dismissing an alert with « explication fournie par le service » or « déjà connu » silences its
service, indicator and category: detection opens no new alert for that key while the value
is no worse than the dismissed one and the silence's date has not passed (one year by
default, or the date the person chose). A value that worsens beyond the dismissed level ends
the silence (``ended_reason`` « worsened ») and opens an alert; a person may lift it at any
time (« revoked »). Who silenced what, why and until when is shown on the alert page and by
``spsti-monitor alerts silences``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.accounts.access import actor_display, readable_regions, region_clause, require_read, require_write, \
    resolve_actor
from monitor.store import db
from monitor.store.models import Alert, AlertEvent, Finding, Service, Silence, utcnow
from monitor.vocabulary import dates
from monitor.vocabulary.catalogue import CATALOGUE, DISMISS_REASONS
from monitor.vocabulary.errors import InvalidAction, NotFound
from monitor.vocabulary.periods import current_month_index

SILENCING_REASONS = ("explication_service", "deja_connu")
DEFAULT_DAYS = 365
MAX_DAYS = 3 * 365


@dataclass
class SilenceView:
    id: int
    alert_id: int
    service_id: str
    service_name: str
    region_code: str
    indicator: str
    category: str
    level: float | None
    until: date
    reason: str
    reason_label: str
    comment: str
    created_by: str
    created_at: datetime
    active: bool
    ended_at: datetime | None
    ended_by: str | None
    ended_reason: str | None


def _latest_value(session: Session, alert: Alert) -> float | None:
    v = session.scalar(sa.select(Finding.value).where(
        Finding.service_id == alert.service_id, Finding.indicator == alert.indicator,
        Finding.category == alert.category, Finding.value.is_not(None))
        .order_by(Finding.month_index.desc(), Finding.id.desc()).limit(1))
    return float(v) if v is not None and math.isfinite(v) else None


def silence_for_dismissal(session: Session, who, alert: Alert, reason: str, comment: str,
                          until: date | None, today: date) -> Silence | None:
    """The silence a dismissal creates (None for reasons that do not silence)."""
    if reason not in SILENCING_REASONS:
        if until is not None:
            raise InvalidAction("Une date de fin de silence n'a de sens que pour les motifs « explication fournie "
                                "par le service » et « déjà connu ».")
        return None
    until = until or today + timedelta(days=DEFAULT_DAYS)
    if until <= today or until > today + timedelta(days=MAX_DAYS):
        raise InvalidAction("La fin du silence doit être une date à venir, dans les trois ans.")
    s = Silence(alert_id=alert.id, service_id=alert.service_id, indicator=alert.indicator, category=alert.category,
                level=_latest_value(session, alert), until=until, reason=reason, comment=comment,
                created_by=who.email, created_at=utcnow())
    session.add(s)
    return s


def worse(indicator: str, value: float | None, level: float | None) -> bool:
    """Whether ``value`` is beyond the silenced ``level`` on the indicator's worse side."""
    if value is None or level is None or not (math.isfinite(value) and math.isfinite(level)):
        return False
    ind = CATALOGUE.get(indicator)
    if ind is None:
        return False
    if ind.worse == "lower":
        return value < level
    if ind.worse == "higher":
        return value > level
    lo, hi = ind.band or (level, level)
    centre = (lo + hi) / 2
    return abs(value - centre) > abs(level - centre)


def active_silences(session: Session) -> dict[tuple[str, str, str], Silence]:
    """The silences nobody lifted and no worse value ended, by (service, indicator, category);
    whether one covers a period is :func:`covers`'s to say."""
    rows = session.scalars(sa.select(Silence).where(Silence.ended_at.is_(None)).order_by(Silence.id))
    return {(s.service_id, s.indicator, s.category): s for s in rows}


def covers(silence: Silence, month_index: int) -> bool:
    """Whether a silence mutes the period ending in ``month_index``: the periods up to the
    month of its end date. Judged by the period detected, not the day detection runs, so that
    detecting old periods again (a backfill, a late correction) mutes what a timely run muted."""
    return month_index <= current_month_index(silence.until)


def _view(s: Silence, name: str, region: str, today: date) -> SilenceView:
    return SilenceView(s.id, s.alert_id, s.service_id, name, region, s.indicator, s.category, s.level, s.until,
                       s.reason, DISMISS_REASONS.get(s.reason, s.reason), s.comment, s.created_by,
                       dates.as_utc(s.created_at), s.ended_at is None and s.until > today,
                       dates.as_utc(s.ended_at), s.ended_by, s.ended_reason)


def list_silences(engine: sa.Engine, actor, *, active_only: bool = True, alert_id: int | None = None,
                  today: date | None = None) -> list[SilenceView]:
    """The silences of the user's regions (in force only, unless ``active_only`` is False)."""
    today = today or dates.today()
    with db.session_scope(engine) as session:
        who = resolve_actor(session, actor)
        q = (sa.select(Silence, Service.name, Service.region_code)
             .join(Service, Service.service_id == Silence.service_id)
             .where(region_clause(Service.region_code, readable_regions(who, None)))
             .order_by(Silence.id.desc()))
        if alert_id is not None:
            q = q.where(Silence.alert_id == alert_id)
        views = [_view(s, n, r, today) for s, n, r in session.execute(q)]
    return [v for v in views if v.active or not active_only]


def revoke_silence(engine: sa.Engine, actor, silence_id: int, comment: str | None = None,
                   today: date | None = None) -> SilenceView:
    """Lift a silence: the next finding of its key opens an alert again."""
    today = today or dates.today()
    with db.session_scope(engine) as session:
        who = resolve_actor(session, actor)
        row = session.execute(sa.select(Silence, Service.name, Service.region_code)
                              .join(Service, Service.service_id == Silence.service_id)
                              .where(Silence.id == silence_id)).one_or_none()
        if row is None:
            raise NotFound(f"Silence n° {silence_id} introuvable.")
        s, name, region = row
        require_read(who, region)
        require_write(who, region)
        if s.ended_at is not None or s.until <= today:
            raise InvalidAction(f"Le silence n° {silence_id} n'est plus en vigueur.")
        s.ended_at, s.ended_by, s.ended_reason = utcnow(), who.email, "revoked"
        session.add(AlertEvent(alert_id=s.alert_id, actor=who.email, at=utcnow(), kind="comment",
                               comment=f"silence n° {s.id} levé par {actor_display(session, who.email)}"
                                       + (f" : {comment}" if comment else "")))
        session.flush()
        return _view(s, name, region, today)
