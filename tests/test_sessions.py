"""Server-side sessions behind a signed cookie (monitor.accounts.sessions), on SQLite and
PostgreSQL: a sign-in lasts, expires when idle or too old, ends at sign-out (every session of
the account), on a password change, a lock or a disabled account; a forged or altered cookie
opens nothing and only a hash of the token is stored."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from monitor.accounts import sessions
from monitor.accounts.users import add_user, authenticate, reset_password, update_user
from monitor.config.env import SessionSettings
from monitor.store import db
from monitor.store.models import User, WebSession

PASSWORD = "correct-horse-battery"
SETTINGS = SessionSettings(idle_minutes=30, max_hours=8, secret="k" * 32, secure_cookie=False)


@pytest.fixture
def accounts(engine):
    add_user(engine, email="agent@dreets.test", name="A", role="agent", regions="84", password=PASSWORD)
    add_user(engine, email="admin@dreets.test", name="B", role="admin", password=PASSWORD)
    return engine


def _uid(engine, email):
    with engine.connect() as c:
        return c.execute(sa.select(User.id).where(User.email == email)).scalar_one()


def test_a_session_signs_in_its_account_and_stores_only_a_hash(accounts):
    cookie = sessions.open_session(accounts, "Agent@dreets.test", SETTINGS)
    signed = sessions.resolve(accounts, cookie, SETTINGS)
    assert signed is not None and signed.email == "agent@dreets.test"
    token = cookie.rsplit(".", 1)[0]
    with accounts.connect() as c:
        stored = c.execute(sa.select(WebSession.token_hash)).scalars().all()
    assert len(stored) == 1 and token not in stored[0] and len(stored[0]) == 64


def _other_first(text: str) -> str:
    return ("B" if text[0] == "A" else "A") + text[1:]


def test_forged_altered_or_foreign_cookies_open_nothing(accounts):
    cookie = sessions.open_session(accounts, "agent@dreets.test", SETTINGS)
    token, sig = cookie.rsplit(".", 1)
    other_key = SessionSettings(30, 8, "another-secret-key-0123456789", False)
    # alter the first character: it carries six significant bits (the last may carry padding
    # bits only, and a fixed replacement equals the original one time in 64)
    forged = [None, "", token, f"{token}.{_other_first(sig)}", f"{_other_first(token)}.{sig}", "a.b", "é" * 30,
              "x" * 10_000,
              sessions.open_session(accounts, "agent@dreets.test", other_key)]
    for value in forged:
        assert sessions.resolve(accounts, value, SETTINGS) is None, value
    assert sessions.resolve(accounts, cookie, SETTINGS) is not None


def test_idle_and_absolute_expiry(accounts):
    cookie = sessions.open_session(accounts, "agent@dreets.test", SETTINGS)
    now = datetime.now(timezone.utc)
    # used every 20 minutes: stays valid beyond the idle delay…
    for minutes in (20, 40, 60):
        assert sessions.resolve(accounts, cookie, SETTINGS, now=now + timedelta(minutes=minutes)) is not None
    # …but not beyond the absolute one
    assert sessions.resolve(accounts, cookie, SETTINGS, now=now + timedelta(hours=8, minutes=1)) is None
    assert sessions.resolve(accounts, cookie, SETTINGS) is None          # and it stays revoked
    idle = sessions.open_session(accounts, "agent@dreets.test", SETTINGS)
    assert sessions.resolve(accounts, idle, SETTINGS, now=now + timedelta(minutes=31)) is None


def test_sign_out_revokes_every_session_of_the_account_only(accounts):
    tab1 = sessions.open_session(accounts, "agent@dreets.test", SETTINGS)
    laptop = sessions.open_session(accounts, "agent@dreets.test", SETTINGS)
    admin = sessions.open_session(accounts, "admin@dreets.test", SETTINGS)
    assert sessions.revoke(accounts, tab1, SETTINGS) == 2
    assert sessions.resolve(accounts, tab1, SETTINGS) is None
    assert sessions.resolve(accounts, laptop, SETTINGS) is None
    assert sessions.resolve(accounts, admin, SETTINGS) is not None
    assert sessions.revoke(accounts, "forged.cookie", SETTINGS) == 0


def test_password_change_lock_and_disabling_end_the_sessions(accounts):
    admin = "admin@dreets.test"
    uid = _uid(accounts, "agent@dreets.test")
    cookie = sessions.open_session(accounts, "agent@dreets.test", SETTINGS)
    reset_password(accounts, admin, uid, "a-new-password-2026")
    assert sessions.resolve(accounts, cookie, SETTINGS) is None

    cookie = sessions.open_session(accounts, "agent@dreets.test", SETTINGS)
    for _ in range(5):
        authenticate(accounts, "agent@dreets.test", "wrong password")
    assert sessions.resolve(accounts, cookie, SETTINGS) is None
    with db.session_scope(accounts) as s:                   # the lock expires: the old session stays ended
        s.execute(sa.update(User).where(User.id == uid).values(locked_until=None, failed_logins=0))
    assert sessions.resolve(accounts, cookie, SETTINGS) is None

    cookie = sessions.open_session(accounts, "agent@dreets.test", SETTINGS)
    update_user(accounts, admin, uid, active=False, comment="départ")
    assert sessions.resolve(accounts, cookie, SETTINGS) is None
