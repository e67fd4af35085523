"""A small world for triage, follow-up, access and digest tests.

Six services (even numbers in Auvergne-Rhône-Alpes 84, odd in PACA 93), users of every role,
and alerts opened by the real lifecycle (``alerts.lifecycle.apply_findings``) from findings.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from argon2 import PasswordHasher

sys.path.insert(0, str(Path(__file__).parent))
from helpers import REGISTER_COLUMNS, register_rows, write_csv  # noqa: E402

from alerts.lifecycle import apply_findings  # noqa: E402
from monitor.store import db  # noqa: E402
from monitor.store.models import Alert, User  # noqa: E402
from monitor.vocabulary.periods import month_index  # noqa: E402
from monitor.ingest.register import load_register  # noqa: E402

PASSWORD = "motdepasse-test"
_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)

USERS = [
    # key, email, name, role, regions, digest, min_severity
    ("agent84", "agent84@dreets.test", "Alice Agent", "agent", "84", "daily", "medium"),
    ("agent84b", "agent84b@dreets.test", "Bruno Agent", "agent", "84", "daily", "low"),
    ("manager84", "manager84@dreets.test", "Marie Responsable", "manager", "84", "weekly", "medium"),
    ("agent93", "agent93@dreets.test", "Paul Agent", "agent", "93", "daily", "high"),
    ("national", "dgt@travail.test", "Nadia DGT", "national", "", "off", "high"),
    ("admin", "admin@dreets.test", "Adam Admin", "admin", "", "off", "medium"),
]

FIRST = "2025-03"


@dataclass
class World:
    services: list[dict]
    users: dict[str, User] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)

    def svc(self, i: int) -> str:
        return self.services[i]["service_id"]


def finding(service_id: str, indicator: str, period: str, severity: str = "medium", score: float = 4.0,
            category: str = "peer_outlier", explanation: str | None = None) -> dict:
    return dict(service_id=service_id, indicator=indicator, category=category, month_index=month_index(period),
                severity=severity, score=score, detectors="funnel_peer",
                explanation=explanation or f"Écart aux pairs sur {indicator} en {period}")


def detect(engine, findings: list[dict], periods: list[str], resolve_after: int = 3):
    """Run the real alert lifecycle over ``periods`` with these findings."""
    df = pd.DataFrame(findings, columns=["service_id", "indicator", "category", "month_index", "severity",
                                         "score", "detectors", "explanation"])
    with db.session_scope(engine) as s:
        return apply_findings(s, df.sort_values("month_index", kind="mergesort"),
                              [month_index(p) for p in periods], resolve_after=resolve_after)


def add_users(engine, world: World) -> None:
    with db.session_scope(engine) as s:
        for key, email, name, role, regions, digest, sev in USERS:
            u = User(email=email, name=name, role=role, regions=regions, digest=digest, min_severity=sev,
                     password_hash=_HASH)
            s.add(u)
            s.flush()
            s.expunge(u)
            world.users[key] = u


def make_world(engine, tmp_path: Path, with_alerts: bool = True) -> World:
    services = register_rows(6, regions=("84", "93"))
    write_csv(tmp_path / "register.csv", services, REGISTER_COLUMNS)
    load_register(engine, tmp_path / "register.csv")
    world = World(services)
    add_users(engine, world)
    if with_alerts:
        detect(engine, [
            finding(world.svc(0), "vip_init_in_delay_rate", FIRST, "high", 6.0,
                    explanation="Taux de VIP dans le délai : 61 % en mars 2025 contre 84 % attendu"),
            finding(world.svc(2), "pdp_cases_per_1000", FIRST, "medium", 4.0),
            finding(world.svc(4), "amt_per_1000", FIRST, "low", 2.5),
            finding(world.svc(1), "vip_init_in_delay_rate", FIRST, "high", 5.5),
            finding(world.svc(3), "pdp_cases_per_1000", FIRST, "low", 2.0),
        ], [FIRST])
        with engine.connect() as c:
            for a in c.execute(sa.select(Alert.id, Alert.service_id, Alert.indicator)):
                i = next(i for i, s in enumerate(services) if s["service_id"] == a.service_id)
                world.alerts[f"s{i}"] = a.id
    return world
