"""What every read model shares: who is asking, the fingerprints that key the dashboard's
caches, the analysis panel as detection sees it, and the peer detector's own configuration.

Every read model takes the engine and the acting user (a ``User``, an ``Actor`` or an e-mail,
reloaded from the database by :func:`monitor.accounts.access.resolve_actor`, as the triage
functions do) and answers within that user's regions only: a service outside them raises
:class:`~monitor.vocabulary.errors.AccessDenied`, and a listing never contains it.

Statistics are not recomputed by the read models: peer z-scores, expected values and limits
come from :func:`detectors.peer.peer_scores` on the stored panel, with the cells the detectors
keep out of statistics (as ``detect`` does), and funnel curves from
:func:`detectors.peer.funnel_curves`. Only descriptive figures (peers' median and 10–90 % band,
counts, medians of a region) are computed here. Functions that need the panel take it as
``panel=`` so that the dashboard can cache it (dashboard/state.py).
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from monitor.accounts.access import Actor, readable_regions, region_clause, require_read, resolve_actor
from monitor.accounts.users import SIGN_IN_EVENTS
from monitor.pipeline.panel_store import load_panel
from monitor.store import db
from monitor.store.models import (
    Alert,
    AlertEvent,
    DetectionRun,
    Finding,
    FollowUpEvent,
    Observation,
    Quarantine,
    Service,
    Submission,
    UserEvent,
)
from monitor.vocabulary import dates as timefmt
from monitor.vocabulary.catalogue import CATALOGUE
from monitor.vocabulary.errors import AccessDenied, NotFound
from monitor.vocabulary.labels import SEVERITY_RANK

if TYPE_CHECKING:
    from detectors.panel import Panel





@lru_cache(maxsize=1)
def peer_config():
    """The peer detector's configuration (imported lazily: the queue needs no statistics)."""
    from detectors.peer import PeerConfig

    return PeerConfig()

def peer_indicators() -> tuple[str, ...]:
    """The indicators the peer detector compares (with counts: funnel; without: robust z on logs)."""
    cfg = peer_config()
    return tuple(cfg.count_indicators) + tuple(cfg.robust_indicators)

def size_dependent() -> tuple[str, ...]:
    """Indicators whose level depends on the service's size: no peer band (it would mislead)."""
    robust = peer_config().robust_indicators
    return tuple(c for c, i in CATALOGUE.items() if i.kind in ("level", "count") and c not in robust)

def peer_scores_of(panel, code: str):
    from detectors.peer import peer_scores

    return peer_scores(panel, code, peer_config())

KEY_INDICATORS = ("vip_init_in_delay_rate", "vip_init_median_delay_days", "reprise_within_8d_rate",
                  "workers_per_physician_fte")

EXTRA_LABELS = {"*": "Rapport complet (tous indicateurs)", "agrement": "Agrément", "certification": "Certification"}

SMALL_MULTIPLE_INDICATORS = tuple(c for c in CATALOGUE if c != "workers_followed") + ("workers_followed",)

def indicator_label(code: str) -> str:
    ind = CATALOGUE.get(code)
    return ind.label_fr if ind else EXTRA_LABELS.get(code, code)

def acting_user(engine: sa.Engine, actor) -> Actor:
    if isinstance(actor, Actor):
        # still reload: a role or region changed by an administrator applies at once
        actor = actor.email
    with db.session_scope(engine) as s:
        return resolve_actor(s, actor)

def session_user(engine: sa.Engine, email: str | None) -> Actor | None:
    """The signed-in user as stored now, or None if unknown or disabled (the session ends)."""
    if not email:
        return None
    try:
        return acting_user(engine, email)
    except AccessDenied:
        return None

def data_version(engine: sa.Engine) -> str:
    """A cheap fingerprint of everything the dashboard shows: it changes with any new alert
    event, follow-up event, detection run, submission, observation or account change, so that
    cached reads keyed on it are never stale. Sign-ins are not account changes here: they
    show in no cached table, and counting them would empty every user's caches at each sign-in."""
    def mx(col, *where):
        return sa.select(sa.func.max(col)).where(*where).scalar_subquery()

    q = sa.select(mx(Alert.id), mx(Alert.updated_at), mx(AlertEvent.id), mx(FollowUpEvent.id),
                  mx(DetectionRun.id), mx(Submission.id), mx(Observation.id),
                  mx(UserEvent.id, UserEvent.kind.not_in(SIGN_IN_EVENTS)))
    with engine.connect() as conn:
        row = conn.execute(q).one()
    return "|".join("" if v is None else str(v) for v in row) + f"|{timefmt.today().isoformat()}"

def panel_version(engine: sa.Engine) -> str:
    """Fingerprint of the stored panel (observations, quarantine, register)."""
    q = sa.select(sa.select(sa.func.max(Observation.id)).scalar_subquery(),
                  sa.select(sa.func.max(Quarantine.id)).scalar_subquery(),
                  sa.select(sa.func.max(Service.updated_at)).scalar_subquery(),
                  sa.select(sa.func.count()).select_from(Service).scalar_subquery())
    with engine.connect() as conn:
        return "|".join("" if v is None else str(v) for v in conn.execute(q).one())

def load_analysis_panel(engine: sa.Engine) -> "Panel":
    """The stored panel as the statistical detectors see it: current observations, with the
    service-months of undeclared size jumps kept out (as ``detect`` does)."""
    from detectors.base import exclude_faulty_cells
    from detectors.registry import default_detectors

    panel = load_panel(engine)
    if panel.last_month is not None:
        exclude_faulty_cells(panel, default_detectors())
    return panel

def region_filter(who: Actor, column, region: str | None = None):
    return region_clause(column, readable_regions(who, region))

def check_service(engine: sa.Engine, actor, service_id: str) -> tuple[Actor, str]:
    with db.session_scope(engine) as session:
        who = resolve_actor(session, actor)
        region = session.scalar(sa.select(Service.region_code).where(Service.service_id == service_id))
        if region is None:
            raise NotFound(f"Service {service_id} introuvable.")
        require_read(who, region, "ce service")
        return who, region

def stored_findings(engine: sa.Engine, service_id: str, indicators: tuple[str, ...] | None = None) -> pd.DataFrame:
    q = (sa.select(Finding.indicator, Finding.month_index, Finding.category, Finding.severity)
         .where(Finding.service_id == service_id))
    if indicators:
        q = q.where(Finding.indicator.in_(indicators))
    with engine.connect() as conn:
        f = pd.DataFrame([tuple(r) for r in conn.execute(q).all()],
                         columns=["indicator", "month_index", "category", "severity"])
    if f.empty:
        return f
    f["rank"] = f["severity"].map(SEVERITY_RANK).fillna(0)
    return f
