"""Builders shared by the tests of sources, scheduler and steward view."""
from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from helpers import INDICATOR_COLUMNS, REGISTER_COLUMNS, indicator_rows, register_rows, write_csv  # noqa: E402

from monitor.store.models import Observation, Quarantine, SourcePull, Submission  # noqa: E402
from monitor.ingest.register import load_register  # noqa: E402


def load_services(engine, tmp_path: Path, n: int = 6) -> list[dict]:
    svcs = register_rows(n)
    write_csv(tmp_path / "register.csv", svcs, REGISTER_COLUMNS)
    load_register(engine, tmp_path / "register.csv")
    return svcs


def indicator_file(path: Path, services: list[dict], months: list[str], seed: int = 1) -> Path:
    return write_csv(path, indicator_rows(services, months, seed=seed), INDICATOR_COLUMNS)


def csv_bytes(services: list[dict], months: list[str], seed: int = 1, tmp: Path | None = None) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return indicator_file(Path(d) / "x.csv", services, months, seed).read_bytes()


def observations(engine) -> list[tuple]:
    """Every stored observation version (nothing may be lost or changed by a failed pull)."""
    t = Observation.__table__
    with engine.connect() as c:
        return sorted(tuple(r) for r in c.execute(sa.select(
            t.c.id, t.c.service_id, t.c.indicator, t.c.period, t.c.value, t.c.version, t.c.is_current,
            t.c.submission_id)).all())


def pulls(engine, source: str | None = None) -> list:
    with engine.connect() as c:
        q = sa.select(SourcePull).order_by(SourcePull.id)
        if source:
            q = q.where(SourcePull.source == source)
        return c.execute(q).all()


def submissions(engine) -> list:
    with engine.connect() as c:
        return c.execute(sa.select(Submission).order_by(Submission.id)).all()


def quarantine_count(engine) -> int:
    with engine.connect() as c:
        return c.scalar(sa.select(sa.func.count()).select_from(Quarantine))


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
