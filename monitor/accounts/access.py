"""Who may read or change what: roles and regions, checked by every service call.

The caller says who acts (a ``User`` row, an ``Actor`` or an e-mail address);
the service layer reloads that user from the database on every call, so a role or region
changed by an administrator applies at once and a disabled account can do nothing.

* ``agent`` and ``manager``: read and write in their regions only;
* ``national``: read every region, write nothing;
* ``admin``: read and write everything, and manage users.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.vocabulary.errors import AccessDenied, InvalidAction, NotFound
from monitor.store.models import User
from monitor.vocabulary.catalogue import REGIONS

ROLES_FR = {"agent": "agent", "manager": "responsable", "national": "national", "admin": "administrateur"}
WRITE_ROLES = ("agent", "manager", "admin")
SYSTEM_ACTORS = {"détection": "la détection automatique"}


def region_fr(code: str) -> str:
    name = REGIONS.get(code, (code, ""))[0]
    return f"{name} ({code})"


@dataclass(frozen=True)
class Actor:
    """A signed-in user as the service layer sees them; ``regions`` None means every region."""
    id: int
    email: str
    name: str
    role: str
    regions: tuple[str, ...] | None

    @classmethod
    def from_user(cls, user: User) -> "Actor":
        if user.role in ("national", "admin"):
            regions = None
        else:
            regions = tuple(r for r in (user.regions or "").split(",") if r)
        return cls(user.id, user.email, user.name, user.role, regions)

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES

    def covers(self, region: str) -> bool:
        return self.regions is None or region in self.regions

    def label(self) -> str:
        return f"{self.name} ({self.email})"


def _email_of(actor) -> str | None:
    if isinstance(actor, str):
        return actor
    return getattr(actor, "email", None)


def resolve_actor(session: Session, actor) -> Actor:
    """The acting user, reloaded from the database; refuses unknown or disabled accounts."""
    email = _email_of(actor)
    if not email:
        raise AccessDenied("Accès refusé : aucun utilisateur identifié.")
    user = session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise AccessDenied(f"Accès refusé : utilisateur inconnu ({email}).")
    if not user.active:
        raise AccessDenied(f"Accès refusé : le compte {user.email} est désactivé.")
    return Actor.from_user(user)


def require_read(actor: Actor, region: str, what: str = "cette alerte") -> None:
    if actor.covers(region):
        return
    if not actor.regions:
        raise AccessDenied("Accès refusé : aucune région ne vous est attribuée.")
    mine = ", ".join(actor.regions)
    raise AccessDenied(f"Accès refusé : {what} concerne la région {region_fr(region)}, "
                       f"hors de vos régions ({mine}).")


def require_write(actor: Actor, region: str, what: str = "cette alerte") -> None:
    if not actor.can_write:
        raise AccessDenied(f"Accès refusé : le rôle {ROLES_FR.get(actor.role, actor.role)} "
                           "est en lecture seule.")
    require_read(actor, region, what)


def require_admin(actor: Actor) -> None:
    if actor.role != "admin":
        raise AccessDenied("Accès refusé : seule une personne ayant le rôle administrateur "
                           "peut gérer les comptes.")


def region_clause(column, regions) -> sa.ColumnElement[bool]:
    """SQL condition limiting ``column`` (a region code) to ``regions``; None = every region.
    An empty tuple matches nothing (a user without regions sees nothing)."""
    if regions is None:
        return sa.true()
    return column.in_(tuple(regions) or ("--",))


def readable_regions(actor: Actor, region: str | None = None) -> tuple[str, ...] | None:
    """Regions a listing may show: the actor's (None = all), narrowed to ``region`` if asked."""
    if region is None:
        return actor.regions
    region = region.strip().zfill(2)
    if region not in REGIONS:
        raise InvalidAction(f"Code région inconnu : {region} (codes INSEE : {', '.join(REGIONS)}).")
    require_read(actor, region, "cette demande")
    return (region,)


def eligible_assignee(session: Session, actor: Actor, user_id: int | None, region: str,
                      what: str = "cette alerte") -> User | None:
    """Check that ``user_id`` may be given work in ``region`` by ``actor``; None clears."""
    if user_id is None:
        return None
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise NotFound(f"Utilisateur n° {user_id} inconnu ou désactivé.")
    target = Actor.from_user(user)
    if not target.can_write:
        raise AccessDenied(f"{user.name} a un rôle en lecture seule et ne peut pas se voir attribuer {what}.")
    if not target.covers(region):
        raise AccessDenied(f"{user.name} n'a pas la région {region_fr(region)} dans ses régions.")
    if actor.role == "agent" and user.id != actor.id:
        raise AccessDenied(f"Accès refusé : seul un responsable peut attribuer {what} à une autre personne.")
    return user


def actor_display(session: Session, actor_email: str) -> str:
    """« Prénom Nom » for a user e-mail, a readable name for system actors."""
    if actor_email in SYSTEM_ACTORS:
        return SYSTEM_ACTORS[actor_email]
    name = session.scalar(sa.select(User.name).where(User.email == actor_email))
    return name or actor_email
