"""Migrations: idempotent, in step with the models, reversible; reference data seeded."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from monitor.store import db, schema
from monitor.store.models import Base, IndicatorDef, Region
from monitor.vocabulary.catalogue import CATALOGUE, REGIONS


def _diff(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "include_object": lambda obj, name, type_, reflected, compare_to: name != "apscheduler_jobs"})
        return compare_metadata(ctx, Base.metadata)


def test_init_is_idempotent_and_matches_the_models(engine):
    assert schema.init(engine) == db.head_revision()
    assert schema.init(engine) == db.head_revision()
    assert _diff(engine) == []
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(Region)).scalar_one() == len(REGIONS) == 18
        assert c.execute(sa.select(sa.func.count()).select_from(IndicatorDef)).scalar_one() == len(CATALOGUE)
        assert c.execute(sa.select(Region.directorate).where(Region.code == "11")).scalar_one() == "DRIEETS"


def test_migrations_go_down_to_nothing_and_back(engine):
    cfg = db._alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert db.current_revision(engine) is None
    assert schema.init(engine) == db.head_revision()
    assert _diff(engine) == []


def test_commands_refuse_an_uninitialised_database(sqlite_url):
    import pytest

    with pytest.raises(db.DatabaseError, match="init"):
        db.require_schema(db.get_engine(sqlite_url))


def test_the_quick_revision_reads_agree_with_alembic(engine):
    """Every command checks the schema with one query and the migration files' revision lines
    (db.current_revision, db.head_revision) instead of Alembic's runtime: they must agree."""
    from alembic.script import ScriptDirectory

    assert db.head_revision() == ScriptDirectory(str(db.MIGRATIONS)).get_current_head()
    schema.init(engine)
    with engine.connect() as conn:
        assert db.current_revision(engine) == MigrationContext.configure(conn).get_current_revision() \
            == db.head_revision()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        db.require_schema(engine)
    except db.DatabaseError as exc:
        assert "schéma de la base est ancien" in str(exc)
    else:
        raise AssertionError("an old schema must be refused")
