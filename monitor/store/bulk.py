"""Bulk inserts inside the caller's transaction: COPY on PostgreSQL (psycopg 3), one DB-API
executemany elsewhere. Callers pass only values the driver adapts natively (str, int, float,
bool, None, datetime; JSON already serialised as text)."""
from __future__ import annotations

import sqlalchemy as sa


def bulk_insert(conn: sa.Connection, table: sa.Table, columns: list[str], rows: list[tuple]) -> None:
    """Insert ``rows`` (tuples in the order of ``columns``) into ``table``, fast."""
    if not rows:
        return
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in columns)
    name = prep.format_table(table)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        with conn.connection.driver_connection.cursor() as cur:
            with cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    if conn.dialect.paramstyle == "qmark":
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {name} ({cols}) VALUES ({marks})", rows)
        return
    conn.execute(sa.insert(table), [dict(zip(columns, r)) for r in rows])
