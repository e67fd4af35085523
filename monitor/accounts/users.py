"""Dashboard users: creation and password checks (argon2, lockout)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from monitor.accounts.passwords import MAX_LENGTH, WeakPassword, check_password
from monitor.store import db
from monitor.store.models import User, UserEvent, utcnow
from monitor.vocabulary.catalogue import REGIONS
from monitor.vocabulary.emails import normalise_email

ROLES = ("agent", "manager", "national", "admin")
DIGESTS = ("daily", "weekly", "off")
SEVERITIES = ("low", "medium", "high")
CLI_ACTOR = "ligne de commande"
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
_HASHER = PasswordHasher()
_SIGN_IN_ACTOR = "connexion"
# the account events a sign-in writes: frequent, and nothing the dashboard's tables show, so the
# data versions that key its caches leave them out (readmodels.common.data_version, queue_version)
SIGN_IN_EVENTS = ("login", "login_failed", "login_refused")


class UserError(ValueError):
    pass


def parse_regions(text: str) -> list[str]:
    codes = [c.strip().zfill(2) for c in (text or "").replace(";", ",").split(",") if c.strip()]
    unknown = [c for c in codes if c not in REGIONS]
    if unknown:
        raise UserError(f"code(s) région inconnu(s) : {', '.join(unknown)} "
                        f"(codes INSEE attendus : {', '.join(REGIONS)})")
    return sorted(set(codes))


def _check_password(password: str, email: str, role: str) -> None:
    try:
        check_password(password, email=email, role=role)
    except WeakPassword as exc:
        raise UserError(str(exc)) from None


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise UserError(f"{what} inconnu(e) : {value} ({', '.join(choices)})")


def add_user(engine: sa.Engine, *, email: str, name: str, role: str, regions: str = "",
             digest: str = "daily", min_severity: str = "medium", password: str,
             actor: str = CLI_ACTOR) -> User:
    address = normalise_email(email)
    if address is None:
        raise UserError(f"adresse électronique invalide : {email.strip()!r} (une seule adresse, "
                        f"de la forme prenom.nom@domaine.fr)")
    email = address
    if role not in ROLES:
        raise UserError(f"rôle inconnu : {role} (agent, manager, national ou admin)")
    _check_choice(digest, DIGESTS, "fréquence de récapitulatif")
    _check_choice(min_severity, SEVERITIES, "gravité minimale")
    codes = parse_regions(regions)
    if role in ("agent", "manager") and not codes:
        raise UserError("un agent ou un responsable doit avoir au moins une région (--regions)")
    _check_password(password, email, role)
    with db.session_scope(engine) as s:
        if s.scalar(sa.select(User.id).where(User.email == email)) is not None:
            raise UserError(f"l'utilisateur {email} existe déjà")
        user = User(email=email, name=name.strip(), role=role, regions=",".join(codes),
                    digest=digest, min_severity=min_severity, password_hash=_HASHER.hash(password))
        s.add(user)
        s.flush()
        s.add(UserEvent(user_id=user.id, actor=actor, at=utcnow(), kind="created",
                        to_value=f"rôle {role} ; régions {','.join(codes) or 'toutes'} ; "
                                 f"récapitulatif {digest} ({min_severity})"))
    return user


GENERIC_FAILURE = (f"adresse ou mot de passe incorrect, ou compte verrouillé ({MAX_FAILED_LOGINS} échecs "
                   f"verrouillent le compte {int(LOCKOUT.total_seconds() // 60)} minutes)")


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash of the real cost, verified for unknown addresses so that they take as long."""
    return _HASHER.hash("compte inexistant : vérification factice")


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def _record_failure(engine: sa.Engine, user_id: int, now: datetime, locked: bool) -> None:
    """Count one failed sign-in in a single UPDATE (no read-modify-write, so concurrent failures
    all count); the attempt that reaches the threshold locks the account. An attempt while
    locked is recorded and does not extend the lock."""
    t = User.__table__
    with db.session_scope(engine) as s:
        if locked:
            s.add(UserEvent(user_id=user_id, actor=_SIGN_IN_ACTOR, at=now, kind="login_refused",
                            comment="tentative sur un compte verrouillé"))
            return
        reached = t.c.failed_logins + 1 >= MAX_FAILED_LOGINS
        count = s.execute(
            sa.update(t).where(t.c.id == user_id)
            .values(failed_logins=sa.case((reached, 0), else_=t.c.failed_logins + 1),
                    locked_until=sa.case((reached, now + LOCKOUT), else_=t.c.locked_until))
            .returning(t.c.failed_logins)).scalar_one()
        s.add(UserEvent(user_id=user_id, actor=_SIGN_IN_ACTOR, at=now, kind="login_failed",
                        comment="mot de passe incorrect"))
        if count == 0:
            s.add(UserEvent(user_id=user_id, actor=_SIGN_IN_ACTOR, at=now, kind="locked",
                            to_value=f"{now + LOCKOUT:%Y-%m-%d %H:%M} UTC",
                            comment=f"verrouillé après {MAX_FAILED_LOGINS} échecs de connexion"))


def authenticate(engine: sa.Engine, email: str, password: str,
                 now: datetime | None = None) -> tuple[User | None, str]:
    """Return (user, "") on success, else (None, French message). Locks after repeated failures.

    An unknown, disabled or locked account gets the same message after the same work (a
    password verification, against a dummy hash for an unknown address), so the answer does
    not tell which addresses exist. The password is verified outside any transaction; the
    outcome is written by conditional UPDATEs, so concurrent attempts cannot get past the lockout.
    """
    now = now or datetime.now(timezone.utc)
    address = (email or "").strip().lower()
    with db.session_scope(engine) as s:
        row = s.execute(sa.select(User.id, User.password_hash, User.active, User.locked_until)
                        .where(User.email == address)).one_or_none()
    ok = _verify(row.password_hash if row is not None else None, (password or "")[:MAX_LENGTH])
    if row is None or not row.active:
        return None, GENERIC_FAILURE
    locked = _aware(row.locked_until)
    is_locked = locked is not None and locked > now
    if not ok or is_locked:
        _record_failure(engine, row.id, now, locked=is_locked)
        return None, GENERIC_FAILURE
    t = User.__table__
    with db.session_scope(engine) as s:
        # succeed only if no concurrent failure locked the account since it was read
        done = s.execute(sa.update(t).where(t.c.id == row.id)
                         .where(sa.or_(t.c.locked_until.is_(None), t.c.locked_until <= now))
                         .values(failed_logins=0, locked_until=None)
                         .returning(t.c.id)).one_or_none()
        if done is None:
            s.add(UserEvent(user_id=row.id, actor=_SIGN_IN_ACTOR, at=now, kind="login_refused",
                            comment="tentative sur un compte verrouillé"))
            return None, GENERIC_FAILURE
        user = s.get(User, row.id)
        if _HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = _HASHER.hash(password)
        s.add(UserEvent(user_id=row.id, actor=_SIGN_IN_ACTOR, at=now, kind="login", comment="connexion"))
        s.flush()
        s.expunge(user)
        return user, ""


# --------------------------------------------------------------------------- administration
# What the dashboard's administration page needs; every function checks that the acting user
# is an administrator (reloaded from the database) and every change is a UserEvent.

@dataclass
class UserView:
    id: int
    email: str
    name: str
    role: str
    regions: list[str]
    digest: str
    min_severity: str
    active: bool
    locked: bool
    last_digest_at: datetime | None
    created_at: datetime


def _view(u: User, now: datetime) -> UserView:
    locked = u.locked_until
    if locked is not None and locked.tzinfo is None:
        locked = locked.replace(tzinfo=timezone.utc)
    return UserView(id=u.id, email=u.email, name=u.name, role=u.role,
                    regions=[r for r in (u.regions or "").split(",") if r], digest=u.digest,
                    min_severity=u.min_severity, active=u.active,
                    locked=locked is not None and locked > now, last_digest_at=u.last_digest_at,
                    created_at=u.created_at)


def _admin(session, actor):
    from monitor.accounts.access import require_admin, resolve_actor

    who = resolve_actor(session, actor)
    require_admin(who)
    return who


def create_user(engine: sa.Engine, actor, **fields) -> User:
    """Create an account on behalf of a signed-in administrator (the dashboard's path).

    ``add_user`` itself is the operator's path (CLI, demo) and checks no role."""
    with db.session_scope(engine) as s:
        who = _admin(s, actor)
    return add_user(engine, actor=who.email, **fields)


def list_users(engine: sa.Engine, actor) -> list[UserView]:
    """Every account (administrators only)."""
    now = datetime.now(timezone.utc)
    with db.session_scope(engine) as s:
        _admin(s, actor)
        return [_view(u, now) for u in s.scalars(sa.select(User).order_by(User.email))]


def assignable_users(engine: sa.Engine, actor, region: str) -> list[UserView]:
    """Active accounts that may be given an alert or a follow-up of ``region``.

    Anyone who may write in that region can list them (to fill an assignment menu); an agent
    only sees themself, since agents cannot give work to others.
    """
    from monitor.accounts.access import Actor, require_write, resolve_actor

    now = datetime.now(timezone.utc)
    with db.session_scope(engine) as s:
        who = resolve_actor(s, actor)
        require_write(who, region, "cette demande")
        out = []
        for u in s.scalars(sa.select(User).where(User.active.is_(True)).order_by(User.name)):
            a = Actor.from_user(u)
            if a.can_write and a.covers(region) and (who.role != "agent" or u.id == who.id):
                out.append(_view(u, now))
        return out


def update_user(engine: sa.Engine, actor, user_id: int, *, name: str | None = None,
                role: str | None = None, regions: str | list[str] | None = None,
                digest: str | None = None, min_severity: str | None = None,
                active: bool | None = None, comment: str | None = None) -> UserView:
    """Change an account (administrators only); one audit event per changed field.

    An administrator cannot remove their own administrator role or disable their own account,
    so that the tool always keeps someone able to manage it.
    """
    if role is not None and role not in ROLES:
        raise UserError(f"rôle inconnu : {role} (agent, manager, national ou admin)")
    if digest is not None:
        _check_choice(digest, DIGESTS, "fréquence de récapitulatif")
    if min_severity is not None:
        _check_choice(min_severity, SEVERITIES, "gravité minimale")
    if isinstance(regions, (list, tuple)):
        regions = ",".join(regions)
    codes = parse_regions(regions) if regions is not None else None
    now = datetime.now(timezone.utc)
    with db.session_scope(engine) as s:
        who = _admin(s, actor)
        user = s.get(User, user_id)
        if user is None:
            raise UserError(f"utilisateur n° {user_id} inconnu")
        if user.id == who.id and ((role is not None and role != "admin") or active is False):
            raise UserError("vous ne pouvez pas retirer vos propres droits d'administrateur "
                            "ni désactiver votre propre compte")
        changes: list[tuple[str, str | None, str | None]] = []

        def change(field: str, new, old) -> None:
            if new is not None and new != old:
                changes.append((field, None if old is None else str(old), str(new)))
                setattr(user, field, new)

        change("name", name.strip() if name is not None else None, user.name)
        change("role", role, user.role)
        change("regions", ",".join(codes) if codes is not None else None, user.regions)
        change("digest", digest, user.digest)
        change("min_severity", min_severity, user.min_severity)
        change("active", active, user.active)
        if user.role in ("agent", "manager") and not user.regions:
            raise UserError("un agent ou un responsable doit avoir au moins une région")
        if not changes:
            raise UserError("aucune modification à enregistrer")
        s.add_all([UserEvent(user_id=user.id, actor=who.email, at=now, kind=f, from_value=old, to_value=new,
                             comment=comment) for f, old, new in changes])
        s.flush()
        return _view(user, now)


def reset_password(engine: sa.Engine, actor, user_id: int, password: str) -> None:
    """Set a new password (administrators only) and unlock the account; the hash is not logged."""
    with db.session_scope(engine) as s:
        who = _admin(s, actor)
        user = s.get(User, user_id)
        if user is None:
            raise UserError(f"utilisateur n° {user_id} inconnu")
        _check_password(password, user.email, user.role)
        user.password_hash = _HASHER.hash(password)
        user.failed_logins, user.locked_until = 0, None
        s.add(UserEvent(user_id=user.id, actor=who.email, at=datetime.now(timezone.utc), kind="password",
                        comment="mot de passe réinitialisé"))


def user_history(engine: sa.Engine, actor, user_id: int) -> list[UserEvent]:
    """An account's audit log, oldest first (administrators only)."""
    with db.session_scope(engine) as s:
        _admin(s, actor)
        events = list(s.scalars(sa.select(UserEvent).where(UserEvent.user_id == user_id).order_by(UserEvent.id)))
        s.expunge_all()
        return events
