"""Dashboard sign-ins that last: server-side sessions behind a signed cookie.

A sign-in opens a row in ``web_sessions`` and gives the browser a cookie holding a random
256-bit token signed with ``itsdangerous`` (the signing library of Flask and of Streamlit's
own auth cookie; HMAC-SHA1 over a key derived from the secret, constant-time comparison).
Only the token's SHA-256 is stored, so a copy of the database opens nothing. A forged or
altered cookie fails the signature before the database is read.

A session is valid while it is not revoked, used within the idle delay, younger than the
absolute delay, and its account is active, not locked and has the password it was opened
with (a fingerprint of the password hash is kept with the session): a password change or a
lock ends every session of the account without the account code having to know about them.
Signing out revokes every session of the account (every tab and browser).
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from itsdangerous import BadSignature, Signer

from monitor.config.env import SessionSettings
from monitor.store import db
from monitor.store.models import User, WebSession

COOKIE_NAME = "spsti_session"
_SALT = "spsti-monitor.session"
_TOUCH_EVERY = timedelta(seconds=60)    # last_seen_at is written at most once a minute per session
_LOG = logging.getLogger(__name__)
_PROCESS_SECRET = secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SignedIn:
    email: str
    session_id: int


def _signer(settings: SessionSettings) -> Signer:
    return Signer(settings.secret or _PROCESS_SECRET, salt=_SALT)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _password_tag(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t


def open_session(engine: sa.Engine, email: str, settings: SessionSettings | None = None) -> str:
    """Open a session for an (already authenticated) account; returns the cookie value."""
    settings = settings or SessionSettings.from_env()
    token = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    with db.session_scope(engine) as s:
        user = s.execute(sa.select(User).where(User.email == email.strip().lower())).scalar_one()
        s.add(WebSession(token_hash=_hash(token), user_id=user.id, password_tag=_password_tag(user.password_hash),
                         created_at=now, last_seen_at=now))
    return _signer(settings).sign(token.encode()).decode()


def _token(cookie: str | None, settings: SessionSettings) -> str | None:
    if not cookie or len(cookie) > 512:
        return None
    try:
        return _signer(settings).unsign(cookie.encode()).decode()
    except (BadSignature, UnicodeError):
        return None


def resolve(engine: sa.Engine, cookie: str | None, settings: SessionSettings | None = None,
            now: datetime | None = None) -> SignedIn | None:
    """The account a cookie signs in, or None (missing, forged, expired, revoked, account
    changed). An invalid session found on the way is revoked; a valid one is touched."""
    settings = settings or SessionSettings.from_env()
    token = _token(cookie, settings)
    if token is None:
        return None
    now = now or datetime.now(timezone.utc)
    with db.session_scope(engine) as s:
        row = s.execute(sa.select(WebSession, User).join(User, User.id == WebSession.user_id)
                        .where(WebSession.token_hash == _hash(token))).one_or_none()
        if row is None:
            return None
        ws, user = row
        if ws.revoked_at is not None:
            return None
        locked = _aware(user.locked_until)
        if (not user.active or (locked is not None and locked > now)
                or ws.password_tag != _password_tag(user.password_hash)
                or now - _aware(ws.created_at) > timedelta(hours=settings.max_hours)
                or now - _aware(ws.last_seen_at) > timedelta(minutes=settings.idle_minutes)):
            ws.revoked_at = now
            return None
        if now - _aware(ws.last_seen_at) >= _TOUCH_EVERY:
            ws.last_seen_at = now
        return SignedIn(user.email, ws.id)


def revoke(engine: sa.Engine, cookie: str | None, settings: SessionSettings | None = None) -> int:
    """Sign out: revoke every open session of the cookie's account. Returns how many."""
    settings = settings or SessionSettings.from_env()
    token = _token(cookie, settings)
    if token is None:
        return 0
    with db.session_scope(engine) as s:
        user_id = s.execute(sa.select(WebSession.user_id).where(WebSession.token_hash == _hash(token))).scalar()
        if user_id is None:
            return 0
        return revoke_account(s, user_id)


def revoke_account(s, user_id: int) -> int:
    """Revoke every open session of an account, inside the caller's transaction."""
    result = s.execute(sa.update(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
                       .values(revoked_at=datetime.now(timezone.utc)))
    return result.rowcount or 0
