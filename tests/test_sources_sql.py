"""SQL source: a query on another database, written to the exchange format and ingested
through the same validation; an unchanged result is not ingested twice."""
from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from helpers import indicator_rows  # noqa: E402
from pull_helpers import load_services, observations, pulls, submissions  # noqa: E402

from monitor.config.settings import Schedule, SqlSourceConfig  # noqa: E402
from monitor.sources import pull_source  # noqa: E402

QUERY = """SELECT siret AS SERVICE_ID, mois AS Period, code AS indicator, valeur AS value,
                  num AS numerator, den AS denominator
           FROM export_indicateurs"""


def _warehouse(path: Path, rows: list[dict]) -> str:
    url = f"sqlite:///{path}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(sa.text("CREATE TABLE export_indicateurs (siret TEXT, mois TEXT, code TEXT, valeur REAL, "
                          "num REAL, den REAL)"))
        c.execute(sa.text("INSERT INTO export_indicateurs VALUES (:s, :p, :i, :v, :n, :d)"),
                  [{"s": r["service_id"], "p": r["period"], "i": r["indicator"], "v": r["value"],
                    "n": r["numerator"] if r["numerator"] != "" else None,
                    "d": r["denominator"] if r["denominator"] != "" else None} for r in rows])
    eng.dispose()
    return url


def _cfg(url: str, query: str = QUERY, **kw) -> SqlSourceConfig:
    return SqlSourceConfig(name="entrepot", kind="sql", schedule=Schedule(seconds=60), url=url, query=query, **kw)


def test_query_ingested_once_then_only_changes(engine, tmp_path):
    svcs = load_services(engine, tmp_path)
    rows = indicator_rows(svcs, ["2025-01", "2025-02"], seed=5)
    url = _warehouse(tmp_path / "dwh.db", rows)
    r = pull_source(engine, _cfg(url))
    assert r.status == "ok", r.error
    assert r.files == 1 and r.accepted == len(rows) and r.rejected == 0
    sub = submissions(engine)[0]
    assert (sub.source, sub.file_name, sub.status) == ("entrepot", "entrepot.csv", "ingested")
    assert pull_source(engine, _cfg(url)).status == "not_modified"            # same result, same checksum
    assert len(submissions(engine)) == 1

    eng = sa.create_engine(url)
    with eng.begin() as c:                                                     # a correction in the warehouse
        c.execute(sa.text("UPDATE export_indicateurs SET valeur = 6000 WHERE code = 'workers_followed' "
                          "AND mois = '2025-02' AND siret = :s"), {"s": svcs[0]["service_id"]})
    eng.dispose()
    r = pull_source(engine, _cfg(url))
    assert r.status == "ok" and r.accepted == 1 and r.unchanged == len(rows) - 1
    assert [p.status for p in pulls(engine, "entrepot")] == ["ok", "not_modified", "ok"]


def test_unreachable_source_database_and_bad_queries_are_recorded(engine, tmp_path):
    svcs = load_services(engine, tmp_path)
    url = _warehouse(tmp_path / "dwh.db", indicator_rows(svcs, ["2025-01"]))
    pull_source(engine, _cfg(url))
    stored = observations(engine)

    r = pull_source(engine, _cfg(f"sqlite:///{tmp_path / 'absent' / 'dwh.db'}"))
    assert r.status == "error" and r.retryable and "injoignable" in r.error
    r = pull_source(engine, _cfg(url, query="SELECT siret AS service_id, mois AS period FROM export_indicateurs"))
    assert r.status == "error" and not r.retryable and "indicator, value" in r.error
    r = pull_source(engine, _cfg(url, query="SELECT * FROM table_absente"))
    assert r.status == "error" and not r.retryable and "refusée" in r.error
    r = pull_source(engine, _cfg(url, password_env="SPSTI_TEST_ABSENT_PASSWORD"))
    assert r.status == "error" and "SPSTI_TEST_ABSENT_PASSWORD" in r.error
    assert observations(engine) == stored
    assert [p.status for p in pulls(engine, "entrepot")] == ["ok", "error", "error", "error", "error"]


def test_postgresql_warehouse_with_password_from_environment(engine, tmp_path, pg_url, monkeypatch):
    """The source database is a PostgreSQL one; its password (if any) comes from password_env."""
    svcs = load_services(engine, tmp_path)
    rows = indicator_rows(svcs, ["2025-01"], seed=2)
    src = sa.create_engine(pg_url)
    with src.begin() as c:
        c.execute(sa.text("CREATE TABLE export_indicateurs (siret TEXT, mois TEXT, code TEXT, valeur NUMERIC, "
                          "num NUMERIC, den NUMERIC)"))
        c.execute(sa.text("INSERT INTO export_indicateurs VALUES (:s, :p, :i, :v, :n, :d)"),
                  [{"s": r["service_id"], "p": r["period"], "i": r["indicator"], "v": r["value"],
                    "n": r["numerator"] or None, "d": r["denominator"] or None} for r in rows])
    src.dispose()
    password = sa.make_url(pg_url).password or ""
    monkeypatch.setenv("SPSTI_TEST_DWH_PASSWORD", password)
    url = sa.make_url(pg_url).set(password=None).render_as_string(hide_password=False)
    r = pull_source(engine, _cfg(url, password_env="SPSTI_TEST_DWH_PASSWORD" if password else None))
    assert r.status == "ok", r.error
    assert r.accepted == len(rows)
