"""A SQL query on any SQLAlchemy URL (a warehouse, another application's database).

The query must return the exchange columns (``service_id, period, indicator, value`` and
optionally ``numerator, denominator``; names are matched case-insensitively). The result is
written, sorted, to a temporary CSV in the exchange format and ingested like any file, so
that the same validation and quarantine apply and an unchanged result is not ingested
twice (same checksum). The password comes from the environment (``password_env``).
"""
from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from monitor.ingest.indicators import OPTIONAL, REQUIRED
from monitor.config.settings import ConfigError, SqlSourceConfig
from monitor.sources.base import NOT_MODIFIED, OK, BaseSource, PullResult, ingest_snapshot

COLUMNS = REQUIRED + OPTIONAL


class SourceUnreachable(Exception):
    """The source database cannot be reached (connection refused or lost): worth a retry."""


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value) if value == value else ""
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def query_to_csv(url: str, query: str) -> tuple[bytes, int]:
    """Run ``query`` on ``url``; return the exchange CSV (UTF-8, sorted rows) and its row count.

    Raises SourceUnreachable when the database cannot be reached or the connection is lost,
    ValueError when the result lacks exchange columns, sa.exc.DBAPIError when the query is
    refused."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            raise SourceUnreachable(_first_line(exc.orig or exc)) from exc
        with conn:
            try:
                result = conn.execute(sa.text(query))
            except sa.exc.DBAPIError as exc:
                if exc.connection_invalidated:
                    raise SourceUnreachable(_first_line(exc.orig or exc)) from exc
                raise
            keys = [str(k).strip().lower() for k in result.keys()]
            missing = [c for c in REQUIRED if c not in keys]
            if missing:
                raise ValueError(f"la requête ne renvoie pas la ou les colonne(s) obligatoire(s) "
                                 f"{', '.join(missing)} (colonnes renvoyées : {', '.join(keys) or 'aucune'})")
            present = [c for c in COLUMNS if c in keys]
            positions = [keys.index(c) for c in present]
            rows = [tuple(_cell(r[i]) for i in positions) for r in result]
    finally:
        engine.dispose()
    rows.sort()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(present)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8"), len(rows)


class SqlSource(BaseSource):
    config: SqlSourceConfig

    def _pull(self, engine: sa.Engine, result: PullResult) -> None:
        cfg = self.config
        try:
            url = cfg.resolved_url()
        except ConfigError as exc:
            result.fail(str(exc))
            return
        safe_url = sa.make_url(url).render_as_string(hide_password=True)
        try:
            data, n_rows = query_to_csv(url, cfg.query)
        except SourceUnreachable as exc:
            result.fail(f"base source injoignable ({safe_url}) : {exc}", retryable=True)
            return
        except ValueError as exc:
            result.fail(str(exc))
            return
        except (sa.exc.DBAPIError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
            result.fail(f"requête refusée par la base source ({safe_url}) : "
                        f"{_first_line(getattr(exc, 'orig', None) or exc)}")
            return
        if n_rows == 0:
            result.notes.append("la requête n'a renvoyé aucune ligne")
            result.status = NOT_MODIFIED
            return
        digest = hashlib.sha256(data).hexdigest()
        result.checksum = digest
        name = cfg.file_name or f"{cfg.name}.csv"
        error = ingest_snapshot(engine, data, name, cfg.name, result, digest)
        if error:
            result.fail(error)
            return
        result.status = OK if result.files else NOT_MODIFIED


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
