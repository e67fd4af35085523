"""Engine and session creation, schema migrations.

SQLite gets WAL journaling, foreign keys and a busy timeout so that the dashboard, the
scheduler and the CLI can share one file; PostgreSQL is used as is.
"""
from __future__ import annotations

from contextlib import contextmanager
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from monitor.config.env import database_url

MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseError(RuntimeError):
    """A database problem explained in one sentence."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@lru_cache(maxsize=16)
def get_engine(url: str | None = None) -> sa.Engine:
    url = database_url(url)
    try:
        engine = sa.create_engine(url, future=True, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise DatabaseError(f"URL de base de données invalide : {url} ({exc})") from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, future=True)


@contextmanager
def session_scope(engine: sa.Engine) -> Iterator[Session]:
    """A transaction: committed on success, rolled back on any error."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(engine: sa.Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Create or upgrade the schema (idempotent)."""
    from alembic import command

    cfg = _alembic_config(engine)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except sa.exc.OperationalError as exc:
        raise DatabaseError(f"base de données injoignable ou illisible : {exc.orig}") from exc


def current_revision(engine: sa.Engine) -> str | None:
    """The revision Alembic recorded in the database (its ``alembic_version`` table), read
    with one query: every command checks it, and loading Alembic's runtime costs more."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise DatabaseError("plusieurs révisions de schéma enregistrées : la base a été modifiée hors de l'outil")
    return rows[0] if rows else None


_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=]+)?=\s*['\"]?([^'\"\s]+)['\"]?\s*$", re.M)


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The latest migration, read from the ``revision`` and ``down_revision`` lines of the
    migration files (the one no other revises), rather than importing every migration
    through Alembic's script directory (half a second for each command). The migrations
    form one chain; anything else is refused here as Alembic would."""
    revisions, parents = set(), set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        if "revision" in found:
            revisions.add(found["revision"])
            if found.get("down_revision") not in (None, "None"):
                parents.add(found["down_revision"])
    heads = revisions - parents
    if len(heads) != 1:
        raise DatabaseError(f"migrations incohérentes : {len(heads)} têtes de révision ({', '.join(sorted(heads))})")
    return heads.pop()


def require_schema(engine: sa.Engine) -> None:
    """Fail with a clear message when ``init`` was not run or the schema is old."""
    try:
        rev = current_revision(engine)
    except sa.exc.OperationalError as exc:
        raise DatabaseError(f"base de données injoignable : {exc.orig}") from exc
    if rev is None:
        raise DatabaseError("la base n'est pas initialisée : lancez d'abord « spsti-monitor init »")
    if rev != head_revision():
        raise DatabaseError("le schéma de la base est ancien : lancez « spsti-monitor init » pour le mettre à jour")
