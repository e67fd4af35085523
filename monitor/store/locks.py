"""A database-wide lock held for a process's lifetime (one scheduler per database).

PostgreSQL: a session advisory lock on a connection kept open (released by the server if the
process dies). SQLite: an exclusive ``flock`` on a file next to the database (released by the
kernel if the process dies). Other back-ends are not locked.
"""
from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

# pg_try_advisory_lock key: a fixed 63-bit number naming "spsti-monitor scheduler"
SCHEDULER_LOCK_KEY = 0x5350_5354_4953_4348


class LockBusy(RuntimeError):
    """Another process holds the lock; the message is for a person."""


class DatabaseLock:
    def __init__(self, engine: sa.Engine, name: str, key: int, busy_message: str):
        self.engine, self.name, self.key, self.busy_message = engine, name, key, busy_message
        self._conn: sa.Connection | None = None
        self._fd: int | None = None

    def _sqlite_path(self) -> Path | None:
        database = self.engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database).resolve().with_name(Path(database).name + f".{self.name}.lock")

    def acquire(self) -> "DatabaseLock":
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            conn = self.engine.connect()
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            conn.commit()
            if not got:
                conn.close()
                raise LockBusy(self.busy_message)
            self._conn = conn
        elif dialect == "sqlite" and (path := self._sqlite_path()) is not None:
            import fcntl

            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise LockBusy(self.busy_message) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
        return self

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            except sa.exc.DBAPIError:
                pass                     # connection lost: the server released the lock already
            finally:
                self._conn.close()
                self._conn = None
        if self._fd is not None:
            os.close(self._fd)           # closing the descriptor releases the flock
            self._fd = None


def scheduler_lock(engine: sa.Engine) -> DatabaseLock:
    where = engine.url.render_as_string(hide_password=True)
    return DatabaseLock(engine, "scheduler", SCHEDULER_LOCK_KEY,
                        f"un autre planificateur tourne déjà sur la base {where} : un seul planificateur "
                        f"par base ; arrêtez l'autre (ou attendez sa fin) avant d'en lancer un nouveau")
