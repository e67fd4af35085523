"""Dates and times as French users read them (Europe/Paris), from UTC values in the database."""
from __future__ import annotations

import calendar
from datetime import date, datetime, timezone

try:
    from zoneinfo import ZoneInfo

    PARIS = ZoneInfo("Europe/Paris")
except Exception:  # no time-zone database on this machine: fall back to UTC
    PARIS = timezone.utc


def as_utc(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes (stored as UTC); PostgreSQL aware ones. Always aware UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def local(dt: datetime) -> datetime:
    return as_utc(dt).astimezone(PARIS)


def today(now: datetime | None = None) -> date:
    """Today's date in France."""
    return local(now or datetime.now(timezone.utc)).date()


def fr_date(d: date | datetime | None) -> str:
    if d is None:
        return "—"
    if isinstance(d, datetime):
        d = local(d).date()
    return d.strftime("%d/%m/%Y")


def fr_time(dt: datetime) -> str:
    return local(dt).strftime("%H:%M")


def fr_datetime(dt: datetime | None) -> str:
    if dt is None:
        return "—"
    return local(dt).strftime("%d/%m/%Y à %H:%M")


def add_months(d: date, months: int) -> date:
    """Same day ``months`` later, clipped to the month's end (31 Aug + 6 months = 28/29 Feb)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))
