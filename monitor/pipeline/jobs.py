"""Runs of periodic jobs: each attempt recorded as a ``JobRun`` (start, end, outcome, counts,
error text), failures retried a bounded number of times with exponential backoff.

A job's action never takes the scheduler down: every exception is caught and recorded. When
the project's database itself cannot be reached, the record of the run is kept in memory
and written with the next record that reaches the database, so that an outage leaves a
trace once it is over.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import pandas as pd
import sqlalchemy as sa

from monitor.store import db
from monitor.store.models import JobRun, utcnow
from monitor.sources.base import STOP

log = logging.getLogger("monitor.pipeline.jobs")

# outcomes of a JobRun
OK, ERROR, SKIPPED, RUNNING, INTERRUPTED, MISSED = "ok", "error", "skipped", "running", "interrupted", "missed"
OUTCOMES_FR = {OK: "réussi", ERROR: "échec", SKIPPED: "sans objet", RUNNING: "en cours",
               INTERRUPTED: "interrompu", MISSED: "manqué"}


@dataclass
class Step:
    """What one attempt of a job's action returns."""
    outcome: str = OK
    counts: dict = field(default_factory=dict)
    error: str | None = None
    retryable: bool = False
    new_data: bool = False          # new observations were stored (detection is due)


@dataclass
class JobOutcome:
    job_id: str
    outcome: str
    counts: dict
    error: str | None
    attempts: int
    run_ids: list[int | None]
    new_data: bool = False

    def summary_fr(self) -> str:
        text = f"{self.job_id} : {OUTCOMES_FR.get(self.outcome, self.outcome)}"
        shown = format_counts(self.counts)
        if shown:
            text += f" ({shown})"
        if self.attempts > 1:
            text += f" après {self.attempts} tentative(s)"
        if self.error:
            text += f" — {self.error}"
        return text


_STATUS_FR = {"ok": "reçu", "not_modified": "rien de nouveau", "error": "échec"}


def format_counts(counts: dict | None) -> str:
    """« fichiers 1, acceptées 120, statut : rien de nouveau » (notes left out)."""
    parts = []
    for key, value in (counts or {}).items():
        if key == "notes":
            continue
        label = str(key).replace("_", " ")
        if key == "statut":
            value = _STATUS_FR.get(value, value)
        parts.append(f"{label} {value}" if isinstance(value, (int, float)) and not isinstance(value, bool)
                     else f"{label} : {value}")
    return ", ".join(parts)


# JobRun records not yet written, per database URL: (row id or None, values)
_PENDING: dict[str, list[tuple[int | None, dict]]] = {}
_PENDING_LOCK = threading.Lock()


def _key(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def pending_records(engine: sa.Engine) -> int:
    with _PENDING_LOCK:
        return len(_PENDING.get(_key(engine), []))


def _write(engine: sa.Engine, row_id: int | None, values: dict, keep: bool = True) -> int | None:
    """Insert (row_id None) or update a JobRun; on a database failure keep it for later
    (unless ``keep`` is false: the provisional ``running`` row is not worth keeping)."""
    key = _key(engine)
    with _PENDING_LOCK:
        backlog = _PENDING.pop(key, [])
    try:
        with db.session_scope(engine) as s:
            for pid, pvalues in backlog:
                _apply(s, pid, pvalues)
            new_id = _apply(s, row_id, values)
        return new_id
    except Exception as exc:  # the database is unreachable: keep everything for the next write
        log.warning("enregistrement d'exécution différé (base injoignable) : %s", _one_line(exc))
        with _PENDING_LOCK:
            _PENDING.setdefault(key, [])[:0] = backlog
            if keep:
                _PENDING[key].append((row_id, values))
        return None


def _apply(s, row_id: int | None, values: dict) -> int:
    if row_id is not None:
        s.execute(sa.update(JobRun).where(JobRun.id == row_id).values(**values))
        return row_id
    row = JobRun(**values)
    s.add(row)
    s.flush()
    return int(row.id)


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__} : {lines[0] if lines else ''}".strip(" :")


def describe_error(exc: BaseException) -> str:
    """One French sentence for an exception raised by a job's action."""
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, db.DatabaseError)):
        return f"base de données du projet injoignable : {_one_line(exc)}"
    return f"erreur inattendue : {_one_line(exc)}"


def execute(job_id: str, action: Callable[[sa.Engine], Step], engine: sa.Engine, *,
            scheduled_for: datetime | None = None, retries: int = 0, backoff: float = 60.0,
            backoff_max: float = 900.0, stop: threading.Event = STOP) -> JobOutcome:
    """Run ``action`` with bounded retries; every attempt is a JobRun row. Never raises."""
    run_ids: list[int | None] = []
    step = Step()
    attempt = 0
    for attempt in range(1, retries + 2):
        started = utcnow()
        base = {"job_id": job_id, "scheduled_for": scheduled_for, "started_at": started, "attempt": attempt}
        run_id = _write(engine, None, {**base, "outcome": RUNNING}, keep=False)
        try:
            step = action(engine)
        except Exception as exc:
            log.exception("tâche %s : échec de la tentative %d", job_id, attempt)
            step = Step(outcome=ERROR, error=describe_error(exc), retryable=True)
        final = {"finished_at": utcnow(), "outcome": step.outcome, "counts": _jsonable(step.counts),
                 "error": step.error and step.error[:4000]}
        _write(engine, run_id, final if run_id is not None else {**base, **final})
        run_ids.append(run_id)
        if step.outcome != ERROR or not step.retryable or attempt > retries:
            break
        delay = min(backoff * 2 ** (attempt - 1), backoff_max)
        log.info("tâche %s : nouvelle tentative dans %.1f s", job_id, delay)
        if stop.wait(delay):
            break
    return JobOutcome(job_id=job_id, outcome=step.outcome, counts=step.counts, error=step.error,
                      attempts=attempt, run_ids=run_ids, new_data=step.new_data)


def _jsonable(counts: dict) -> dict:
    import json

    return json.loads(json.dumps(counts, default=str, ensure_ascii=False))


def record_missed(engine: sa.Engine, job_id: str, scheduled_for: datetime | None) -> None:
    now = utcnow()
    _write(engine, None, {"job_id": job_id, "scheduled_for": scheduled_for, "started_at": now,
                          "finished_at": now, "outcome": MISSED, "attempt": 0,
                          "error": "exécution manquée : hors du délai de rattrapage (misfire_grace_seconds)"})


def mark_interrupted(engine: sa.Engine) -> int:
    """Runs and pulls left ``running`` by a scheduler that stopped abruptly become
    ``interrupted`` / ``error``. Call when a scheduler starts (one scheduler per database)."""
    from monitor.store.models import SourcePull

    text = "interrompu : le planificateur s'est arrêté pendant l'exécution"
    with db.session_scope(engine) as s:
        n = s.execute(sa.update(JobRun).where(JobRun.outcome == RUNNING)
                      .values(outcome=INTERRUPTED, finished_at=utcnow(), error=text)).rowcount
        s.execute(sa.update(SourcePull).where(SourcePull.status == "running")
                  .values(status="error", finished_at=utcnow(), error=text))
    return int(n or 0)


RUN_COLUMNS = ["id", "job_id", "scheduled_for", "started_at", "finished_at", "outcome", "attempt",
               "counts", "error"]


def recent_runs(engine: sa.Engine, limit: int = 20, job_id: str | None = None) -> pd.DataFrame:
    """The latest job runs, newest first."""
    q = sa.select(*[getattr(JobRun, c) for c in RUN_COLUMNS]).order_by(JobRun.started_at.desc(),
                                                                       JobRun.id.desc()).limit(limit)
    if job_id:
        q = q.where(JobRun.job_id == job_id)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=RUN_COLUMNS)


def scheduled_jobs(engine: sa.Engine) -> pd.DataFrame:
    """Jobs in the scheduler's persistent store with their next run (UTC); empty if none."""
    cols = ["job_id", "next_run_time"]
    if not sa.inspect(engine).has_table("apscheduler_jobs"):
        return pd.DataFrame(columns=cols)
    t = sa.table("apscheduler_jobs", sa.column("id"), sa.column("next_run_time"))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.id, t.c.next_run_time).order_by(t.c.next_run_time)).all()
    from datetime import timezone

    return pd.DataFrame([(r[0], None if r[1] is None else datetime.fromtimestamp(float(r[1]), timezone.utc))
                         for r in rows], columns=cols)


def _fmt_time(value) -> str:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return "—"
    if isinstance(value, str):
        return value[:19]
    try:
        if value.tzinfo is not None:
            from datetime import timezone
            value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    except AttributeError:
        return str(value)


def format_runs_fr(runs: pd.DataFrame, upcoming: pd.DataFrame | None = None) -> str:
    """Plain-text listing of runs for the ``jobs`` command (times in UTC)."""
    lines = []
    if upcoming is not None and len(upcoming):
        lines.append("Tâches planifiées (prochaine exécution, UTC) :")
        for r in upcoming.itertuples():
            lines.append(f"  {r.job_id:<30} {_fmt_time(r.next_run_time) if r.next_run_time is not None else 'en pause'}")
        lines.append("")
    if runs.empty:
        lines.append("Aucune exécution enregistrée : lancez « spsti-monitor schedule ».")
        return "\n".join(lines) + "\n"
    lines.append("Dernières exécutions (heures UTC) :")
    lines.append(f"  {'n°':>6}  {'tâche':<28} {'début':<19}  {'durée':>7}  {'résultat':<11} {'essai':>5}  détail")
    for r in runs.itertuples():
        duration = "—"
        if r.finished_at is not None and r.started_at is not None and not pd.isna(r.finished_at):
            try:
                duration = f"{(pd.Timestamp(r.finished_at) - pd.Timestamp(r.started_at)).total_seconds():.1f} s"
            except (TypeError, ValueError):
                pass
        counts = r.counts if isinstance(r.counts, dict) else {}
        detail = format_counts(counts)
        if isinstance(r.error, str) and r.error:
            detail = (detail + " — " if detail else "") + r.error.splitlines()[0][:300]
        lines.append(f"  {r.id:>6}  {r.job_id:<28} {_fmt_time(r.started_at):<19}  {duration:>7}  "
                     f"{OUTCOMES_FR.get(r.outcome, r.outcome):<11} {r.attempt:>5}  {detail}")
    return "\n".join(lines) + "\n"
