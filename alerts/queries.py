"""Read-side service functions for alerts, scoped to a user's regions."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from alerts.access import region_clause
from monitor.models import Alert, Region, Service


@dataclass(frozen=True)
class Scope:
    """What a signed-in user may see: ``regions`` None means every region."""
    email: str
    role: str
    regions: tuple[str, ...] | None

    @classmethod
    def of(cls, user) -> "Scope":
        if user.role in ("national", "admin"):
            return cls(user.email, user.role, None)
        return cls(user.email, user.role, tuple(r for r in (user.regions or "").split(",") if r))


def alerts_frame(engine: sa.Engine, scope: Scope, statuses: tuple[str, ...] | None = ("open",)) -> pd.DataFrame:
    q = (sa.select(Alert.id, Alert.service_id, Service.name.label("service_name"), Service.region_code,
                   Region.name.label("region_name"), Alert.indicator, Alert.category, Alert.status,
                   Alert.severity, Alert.score, Alert.opened_period, Alert.last_period, Alert.explanation)
         .join(Service, Service.service_id == Alert.service_id)
         .join(Region, Region.code == Service.region_code)
         .order_by(Alert.score.desc()))
    if statuses:
        q = q.where(Alert.status.in_(statuses))
    q = q.where(region_clause(Service.region_code, scope.regions))
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(q).mappings().all(),
                            columns=["id", "service_id", "service_name", "region_code", "region_name",
                                     "indicator", "category", "status", "severity", "score",
                                     "opened_period", "last_period", "explanation"])
