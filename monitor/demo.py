"""``demo``: a fresh demonstration database built from the bundled fixtures."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import sqlalchemy as sa

from monitor import db
from monitor.datasets import FIXTURES_DIR, load_dataset
from monitor.detection import run_detection
from monitor.users import add_user

DEMO_PASSWORD = "demo-spsti-2026"
DEMO_USERS = [
    ("admin@demo.spsti.fr", "Administratrice démo", "admin", ""),
    ("national@demo.spsti.fr", "Analyste DGT", "national", ""),
    ("manager.ara@demo.spsti.fr", "Responsable de pôle Auvergne-Rhône-Alpes", "manager", "84"),
    ("agent.ara@demo.spsti.fr", "Agent de contrôle Auvergne-Rhône-Alpes", "agent", "84"),
    ("agent.paca@demo.spsti.fr", "Agent de contrôle Provence-Alpes-Côte d'Azur", "agent", "93"),
]


def reset_database(url: str) -> sa.Engine:
    """Empty the database at ``url`` (delete the SQLite file; drop every table otherwise)."""
    u = sa.make_url(url)
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        db.get_engine.cache_clear()
        for suffix in ("", "-wal", "-shm"):
            Path(u.database + suffix).unlink(missing_ok=True)
        return db.get_engine(url)
    engine = db.get_engine(url)
    with engine.begin() as conn:
        meta = sa.MetaData()
        meta.reflect(conn)
        meta.drop_all(conn)
    return engine


def build_demo(url: str, echo: Callable[[str], None] = print, data_dir: Path = FIXTURES_DIR) -> sa.Engine:
    t0 = time.perf_counter()
    echo(f"Base de démonstration : {sa.make_url(url).render_as_string(hide_password=True)} (recréée)")
    engine = reset_database(url)
    load_dataset(engine, data_dir, echo=echo)
    echo("Détection période par période…")
    summary = run_detection(engine, progress=lambda i, n, name: echo(f"  [{i}/{n}] {name}"))
    echo(summary.summary_fr())
    for email, name, role, regions in DEMO_USERS:
        add_user(engine, email=email, name=name, role=role, regions=regions, password=DEMO_PASSWORD)
    echo(f"Comptes de démonstration (mot de passe commun : {DEMO_PASSWORD}) :")
    for email, _name, role, regions in DEMO_USERS:
        echo(f"  {email:<30} {role:<9} {('régions ' + regions) if regions else 'toutes régions'}")
    echo(f"Prêt en {time.perf_counter() - t0:.1f} s.")
    return engine
