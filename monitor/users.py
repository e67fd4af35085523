"""Dashboard users: creation and password checks (argon2, lockout)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from monitor import db
from monitor.models import User
from monitor.reference import REGIONS

ROLES = ("agent", "manager", "national", "admin")
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
_HASHER = PasswordHasher()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserError(ValueError):
    pass


def parse_regions(text: str) -> list[str]:
    codes = [c.strip().zfill(2) for c in (text or "").replace(";", ",").split(",") if c.strip()]
    unknown = [c for c in codes if c not in REGIONS]
    if unknown:
        raise UserError(f"code(s) région inconnu(s) : {', '.join(unknown)} "
                        f"(codes INSEE attendus : {', '.join(REGIONS)})")
    return sorted(set(codes))


def add_user(engine: sa.Engine, *, email: str, name: str, role: str, regions: str = "",
             digest: str = "daily", min_severity: str = "medium", password: str) -> User:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise UserError(f"adresse électronique invalide : {email}")
    if role not in ROLES:
        raise UserError(f"rôle inconnu : {role} (agent, manager, national ou admin)")
    codes = parse_regions(regions)
    if role in ("agent", "manager") and not codes:
        raise UserError("un agent ou un responsable doit avoir au moins une région (--regions)")
    if len(password) < 8:
        raise UserError("mot de passe trop court (8 caractères au moins)")
    with db.session_scope(engine) as s:
        if s.scalar(sa.select(User.id).where(User.email == email)) is not None:
            raise UserError(f"l'utilisateur {email} existe déjà")
        user = User(email=email, name=name.strip(), role=role, regions=",".join(codes),
                    digest=digest, min_severity=min_severity, password_hash=_HASHER.hash(password))
        s.add(user)
    return user


def authenticate(engine: sa.Engine, email: str, password: str,
                 now: datetime | None = None) -> tuple[User | None, str]:
    """Return (user, "") on success, else (None, French message). Locks after repeated failures."""
    now = now or datetime.now(timezone.utc)
    generic = "adresse ou mot de passe incorrect"
    with db.session_scope(engine) as s:
        user = s.scalar(sa.select(User).where(User.email == email.strip().lower()))
        if user is None or not user.active:
            return None, generic
        locked = user.locked_until
        if locked is not None and locked.tzinfo is None:
            locked = locked.replace(tzinfo=timezone.utc)
        if locked is not None and locked > now:
            return None, f"compte verrouillé après {MAX_FAILED_LOGINS} échecs : réessayez après {locked:%H:%M} (UTC)"
        try:
            _HASHER.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILED_LOGINS:
                user.locked_until = now + LOCKOUT
                user.failed_logins = 0
            return None, generic
        user.failed_logins = 0
        user.locked_until = None
        if _HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = _HASHER.hash(password)
        s.flush()
        s.expunge(user)
        return user, ""
