"""Alert export (contract: ``alerts export``), CSV or JSON."""
from __future__ import annotations

import csv
import io
import json

import sqlalchemy as sa

from alerts.safe_csv import safe_cell
from monitor.store.models import Alert, Service
from monitor.vocabulary.catalogue import REGIONS
from monitor.vocabulary.statuses import ALERT_STATUSES

EXPORT_COLUMNS = ["alert_id", "service_id", "service_name", "region_code", "indicator", "category",
                  "opened_period", "last_period", "status", "severity", "score", "detectors",
                  "explanation"]


class ExportError(ValueError):
    pass


def alert_rows(engine: sa.Engine, status: str | None = None, region: str | None = None,
               regions: list[str] | None = None) -> list[dict]:
    """Alerts as export rows; ``regions`` restricts to a user's regions (None = all)."""
    if status is not None and status not in ALERT_STATUSES:
        raise ExportError(f"statut inconnu : {status} (attendu : {', '.join(ALERT_STATUSES)})")
    if region is not None:
        region = region.strip().zfill(2)
        if region not in REGIONS:
            raise ExportError(f"code région inconnu : {region} (codes INSEE : {', '.join(REGIONS)})")
    q = (sa.select(Alert.id.label("alert_id"), Alert.service_id, Service.name.label("service_name"),
                   Service.region_code, Alert.indicator, Alert.category, Alert.opened_period,
                   Alert.last_period, Alert.status, Alert.severity, Alert.score, Alert.detectors,
                   Alert.explanation)
         .join(Service, Service.service_id == Alert.service_id)
         .order_by(Alert.id))
    if status:
        q = q.where(Alert.status == status)
    if region:
        q = q.where(Service.region_code == region)
    if regions is not None:
        q = q.where(Service.region_code.in_(regions))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    for r in rows:
        r["score"] = round(float(r["score"]), 3)
    return rows


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: safe_cell(r[k]) for k in EXPORT_COLUMNS})
    return buf.getvalue()


def export_alerts(engine: sa.Engine, fmt: str = "csv", status: str | None = None,
                  region: str | None = None, regions: list[str] | None = None) -> str:
    rows = alert_rows(engine, status=status, region=region, regions=regions)
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    if fmt == "csv":
        return to_csv(rows)
    raise ExportError(f"format inconnu : {fmt} (csv ou json)")


def export_alerts_for(engine: sa.Engine, actor, fmt: str = "csv", status: str | None = None,
                      region: str | None = None) -> str:
    """:func:`export_alerts` as a signed-in user: only their regions (monitor.accounts.access rules)."""
    from monitor.accounts.access import readable_regions, resolve_actor
    from monitor.store import db

    with db.session_scope(engine) as s:
        who = resolve_actor(s, actor)
        regions = readable_regions(who, region) if region is not None else who.regions
    return export_alerts(engine, fmt=fmt, status=status, region=region,
                         regions=list(regions) if regions is not None else None)
