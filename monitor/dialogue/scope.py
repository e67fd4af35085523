"""Who may read the yearly work. ``actor=None`` is the operator at the command line without
``--as`` (like ``alerts export``): every region. Otherwise the user is reloaded and the
region checked in the service layer, so that no page, export or command can reach another
region's services."""
from __future__ import annotations

import sqlalchemy as sa

from monitor.accounts.access import Actor, readable_regions, region_clause, require_read, resolve_actor
from monitor.store import db
from monitor.store.models import Service
from monitor.vocabulary.catalogue import REGIONS
from monitor.vocabulary.errors import InvalidAction, NotFound


def who(engine: sa.Engine, actor) -> Actor | None:
    if actor is None:
        return None
    if isinstance(actor, Actor):
        actor = actor.email
    with db.session_scope(engine) as s:
        return resolve_actor(s, actor)


def check_region(user: Actor | None, region: str, what: str = "cette région") -> str:
    """The region code, normalised; refused outside the user's regions."""
    code = str(region).strip().zfill(2)
    if code not in REGIONS:
        raise InvalidAction(f"Code région inconnu : {region} (codes INSEE : {', '.join(REGIONS)}).")
    if user is not None:
        require_read(user, code, what)
    return code


def service_region(engine: sa.Engine, user: Actor | None, service_id: str) -> str:
    """The service's region; NotFound if unknown, AccessDenied outside the user's regions."""
    with engine.connect() as conn:
        region = conn.execute(sa.select(Service.region_code)
                              .where(Service.service_id == str(service_id).strip())).scalar()
    if region is None:
        raise NotFound(f"Service {service_id} introuvable.")
    if user is not None:
        require_read(user, region, "ce service")
    return region


def region_condition(user: Actor | None, column, region: str | None = None):
    """SQL condition on a region column: the user's regions (all for None), narrowed to ``region``."""
    if user is None:
        return sa.true() if region is None else column == check_region(None, region)
    return region_clause(column, readable_regions(user, region))
