"""Bulk inserts inside the caller's transaction: COPY on PostgreSQL (psycopg 3), one DB-API
executemany elsewhere. Callers pass only values the driver adapts natively (str, int, float,
bool, None, datetime; JSON already serialised as text)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping

import sqlalchemy as sa


@contextmanager
def references_checked_by_caller(engine: sa.Engine) -> Iterator[sa.Engine | sa.Connection]:
    """What to bind a session to for a bulk write whose foreign keys the caller has checked
    itself, in bulk, inside its transaction: on SQLite a connection that does not look up the
    parent rows of every inserted row again (a third of the cost of a row), with enforcement
    restored before the connection goes back to the pool; elsewhere the engine, unchanged.

    SQLite only honours ``PRAGMA foreign_keys`` outside a transaction: it is set before the
    session's first statement and reset after its commit or rollback."""
    if engine.dialect.name != "sqlite":
        yield engine
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        try:
            yield conn
        finally:
            try:
                conn.rollback()
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()
            except Exception:
                conn.invalidate()         # never back to the pool without its foreign keys
                raise


def bulk_insert(conn: sa.Connection, table: sa.Table, columns: list[str], rows: list[tuple],
                constants: Mapping[str, int | bool] | None = None) -> None:
    """Insert ``rows`` (tuples in the order of ``columns``) into ``table``, fast.

    ``constants``: integer or boolean columns with the same value on every row (a submission
    id, a flag). With executemany they are written into the statement rather than bound on
    each row, which is a good part of the cost of a row on SQLite."""
    if not rows:
        return
    constants = dict(constants or {})
    for name, value in constants.items():
        if type(value) not in (int, bool):      # only these are safe to write as SQL literals
            raise TypeError(f"constant {name}={value!r}: int or bool expected")
    prep = conn.dialect.identifier_preparer
    all_columns = list(columns) + list(constants)
    cols = ", ".join(prep.quote(c) for c in all_columns)
    name = prep.format_table(table)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        tail = tuple(constants.values())
        with conn.connection.driver_connection.cursor() as cur:
            with cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row + tail if tail else row)
        return
    if conn.dialect.paramstyle == "qmark":
        marks = ", ".join(["?"] * len(columns) + [str(int(v)) for v in constants.values()])
        conn.exec_driver_sql(f"INSERT INTO {name} ({cols}) VALUES ({marks})", rows)
        return
    conn.execute(sa.insert(table), [dict(zip(columns, r), **constants) for r in rows])
