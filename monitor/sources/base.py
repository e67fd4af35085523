"""What every source shares: the pull result, the record of each pull, ingesting a file.

A source is pulled by ``pull(engine)``: it records one ``SourcePull`` row (status ``ok``,
``not_modified`` or ``error``, counts, checksum, ETag / Last-Modified, error text) and hands
each new file to ``monitor.ingest.indicators``, so that every file, whatever its source, goes through
the same validation and quarantine. A pull never raises for a problem of the source itself
(unreachable server, unreadable file): it records it. It raises only when the project's
database cannot be written, which the job wrapper records and retries.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa

from monitor.store import db
from monitor.ingest.indicators import IngestReport, ingest_files
from monitor.store.models import SourcePull, Submission, utcnow
from monitor.ingest.readers import InputFileError
from monitor.config.settings import SourceConfig

# Set when the scheduler shuts down: waits between retries end at once.
STOP = threading.Event()

OK, NOT_MODIFIED, ERROR = "ok", "not_modified", "error"


@dataclass
class PullResult:
    source: str
    kind: str
    status: str = OK
    files: int = 0                    # files ingested (new checksums)
    accepted: int = 0
    rejected: int = 0
    unchanged: int = 0
    checksum: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    retryable: bool = False           # a later attempt may succeed (server or network down)
    attempts: int = 1
    notes: list[str] = field(default_factory=list)     # e.g. failed attempts before a success
    submissions: list[int] = field(default_factory=list)
    pull_id: int | None = None

    def add_report(self, report: IngestReport) -> None:
        if report.submission_id is not None:
            self.submissions.append(report.submission_id)
        if report.duplicate_file:
            return
        self.files += 1
        self.accepted += report.accepted
        self.rejected += report.rejected
        self.unchanged += report.unchanged

    def fail(self, message: str, retryable: bool = False) -> "PullResult":
        self.status, self.error, self.retryable = ERROR, message, retryable
        return self

    def counts(self) -> dict:
        out = {"statut": self.status, "fichiers": self.files, "acceptées": self.accepted,
               "rejetées": self.rejected, "inchangées": self.unchanged}
        if self.attempts > 1:
            out["tentatives"] = self.attempts
        if self.notes:
            out["notes"] = self.notes
        return out

    def summary_fr(self) -> str:
        head = {OK: "reçu", NOT_MODIFIED: "rien de nouveau", ERROR: "échec"}.get(self.status, self.status)
        text = (f"source « {self.source} » ({self.kind}) : {head} — fichiers {self.files}, "
                f"acceptées {self.accepted}, rejetées {self.rejected}, inchangées {self.unchanged}")
        if self.error:
            text += f" ; {self.error}"
        return text


class Source(Protocol):
    config: SourceConfig

    def pull(self, engine: sa.Engine) -> PullResult: ...


class BaseSource:
    """Records the pull around ``_pull`` (implemented by each kind)."""

    def __init__(self, config: SourceConfig):
        self.config = config

    def pull(self, engine: sa.Engine) -> PullResult:
        result = PullResult(source=self.config.name, kind=self.config.kind)
        result.pull_id = start_pull(engine, self.config.name, self.config.kind)
        try:
            self._pull(engine, result)
        except (sa.exc.OperationalError, sa.exc.InterfaceError, db.DatabaseError):
            # the project's database went away during the pull: the job wrapper records it
            _try_finish(engine, result.pull_id, result.fail("base de données du projet injoignable pendant la collecte", True))
            raise
        except Exception as exc:  # a bug or an unforeseen failure: recorded, never hidden
            result.fail(f"erreur inattendue : {type(exc).__name__} : {exc}", retryable=True)
        finish_pull(engine, result.pull_id, result)
        return result

    def _pull(self, engine: sa.Engine, result: PullResult) -> None:  # pragma: no cover
        raise NotImplementedError


def start_pull(engine: sa.Engine, source: str, kind: str) -> int:
    with db.session_scope(engine) as s:
        row = SourcePull(source=source, kind=kind, status="running", started_at=utcnow())
        s.add(row)
        s.flush()
        return int(row.id)


def finish_pull(engine: sa.Engine, pull_id: int, result: PullResult) -> None:
    with db.session_scope(engine) as s:
        s.execute(sa.update(SourcePull).where(SourcePull.id == pull_id).values(
            status=result.status, finished_at=utcnow(), files=result.files, accepted=result.accepted,
            rejected=result.rejected, unchanged=result.unchanged, checksum=result.checksum,
            etag=result.etag, last_modified=result.last_modified,
            error=(result.error or None) and result.error[:4000]))


def _try_finish(engine: sa.Engine, pull_id: int | None, result: PullResult) -> None:
    if pull_id is None:
        return
    try:
        finish_pull(engine, pull_id, result)
    except Exception:
        pass


def last_good_pull(engine: sa.Engine, source: str) -> SourcePull | None:
    """The latest pull of ``source`` that succeeded (``ok`` or ``not_modified``)."""
    with db.session_scope(engine) as s:
        return s.scalars(sa.select(SourcePull)
                         .where(SourcePull.source == source, SourcePull.status.in_((OK, NOT_MODIFIED)))
                         .order_by(SourcePull.started_at.desc(), SourcePull.id.desc()).limit(1)).first()


def known_checksums(engine: sa.Engine, checksums: list[str], source: str) -> set[str]:
    """Checksums already ingested (from any source), or already refused as unreadable from
    this source (the same bytes would be refused again: they are reported once)."""
    if not checksums:
        return set()
    found: set[str] = set()
    with engine.connect() as conn:
        for i in range(0, len(checksums), 500):
            chunk = checksums[i:i + 500]
            found.update(conn.execute(
                sa.select(Submission.checksum).where(Submission.checksum.in_(chunk)).where(
                    (Submission.status == "ingested")
                    | ((Submission.status == "failed") & (Submission.source == source)))).scalars())
    return found


def ingest_path(engine: sa.Engine, path: Path, source: str, result: PullResult) -> str | None:
    """Ingest one file into the store (one transaction); returns the error text if the file
    cannot be read (a ``failed`` submission is then recorded, nothing else changes)."""
    for _, outcome in ingest_files(engine, [path], source=source):
        if isinstance(outcome, InputFileError):
            return str(outcome)
        result.add_report(outcome)
    return None


def previous_submission(engine: sa.Engine, checksum: str, source: str) -> Submission | None:
    """The submission that already holds these exact bytes: ingested (from any source), or
    refused as unreadable when it came from this source."""
    with db.session_scope(engine) as s:
        return s.scalars(sa.select(Submission).where(Submission.checksum == checksum).where(
            (Submission.status == "ingested")
            | ((Submission.status == "failed") & (Submission.source == source)))
            .order_by(Submission.id.desc()).limit(1)).first()


def ingest_snapshot(engine: sa.Engine, data: bytes, file_name: str, source: str, result: PullResult,
                    checksum: str) -> str | None:
    """Ingest bytes already read (and hashed) under ``file_name``, unless these bytes were
    already received. Returns an error text, or None. The file on disk is never touched."""
    import tempfile

    prev = previous_submission(engine, checksum, source)
    if prev is not None:
        if prev.status == "failed":
            return (f"{file_name} : contenu identique à un fichier déjà refusé "
                    f"(soumission n° {prev.id}) : {prev.error}")
        result.notes.append(f"{file_name} : contenu déjà reçu (soumission n° {prev.id}), ignoré")
        return None
    with tempfile.TemporaryDirectory(prefix="spsti-pull-") as tmp:
        path = Path(tmp) / file_name
        path.write_bytes(data)
        return ingest_path(engine, path, source, result)
