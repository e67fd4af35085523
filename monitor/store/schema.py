"""``init``: migrate the schema and synchronise the code-owned reference tables."""
from __future__ import annotations

import sqlalchemy as sa

from monitor.store import db
from monitor.store.models import IndicatorDef, Region
from monitor.vocabulary.catalogue import CATALOGUE, REGIONS


def sync_reference_data(engine: sa.Engine) -> None:
    """Upsert the regions and the indicator catalogue from monitor.vocabulary.catalogue (idempotent)."""
    with db.session_scope(engine) as s:
        for code, (name, directorate) in REGIONS.items():
            s.merge(Region(code=code, name=name, directorate=directorate))
        for ind in CATALOGUE.values():
            s.merge(IndicatorDef(code=ind.code, label_fr=ind.label_fr, label_en=ind.label_en,
                                 unit=ind.unit, kind=ind.kind, worse=ind.worse, scale=ind.scale))


def init(engine: sa.Engine) -> str:
    db.upgrade(engine)
    sync_reference_data(engine)
    return db.current_revision(engine)
