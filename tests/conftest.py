"""Shared fixtures: a fresh database per test, on SQLite and (when configured) PostgreSQL."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.store import db, schema

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PG_URL = os.environ.get("SPSTI_MONITOR_TEST_PG_URL")


def _pg_admin_url(url: str) -> sa.URL:
    return sa.make_url(url).set(database="postgres")


@pytest.fixture
def pg_url():
    """URL of a brand-new PostgreSQL database, dropped afterwards."""
    if not PG_URL:
        pytest.skip("PostgreSQL non configuré : définissez SPSTI_MONITOR_TEST_PG_URL (fait par .ci/run)")
    name = f"spsti_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_pg_admin_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    eng = db.get_engine(url)
    eng.dispose()
    db.get_engine.cache_clear()
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request, tmp_path):
    """Each test using it runs twice: embedded SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def engine(db_url):
    eng = db.get_engine(db_url)
    schema.init(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url):
    eng = db.get_engine(sqlite_url)
    schema.init(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def shared_reference():
    ref = SHARED / "reference"
    if not ref.is_dir():
        pytest.skip("../shared/reference absent : tests de référence ignorés")
    return ref
