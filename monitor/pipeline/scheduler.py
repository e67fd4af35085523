"""``spsti-monitor schedule``: the periodic jobs under APScheduler 3.

Jobs live in APScheduler's SQLAlchemy job store on the project's database (table
``apscheduler_jobs``), so a restart loses none: each job's next run time is kept, and the
runs missed while the scheduler was down are coalesced into one run (``coalesce``), provided
the downtime is within ``misfire_grace_seconds``. A job never runs twice for one scheduled
time (``max_instances = 1``; the next run time is stored before the job runs).

Jobs (ids): ``source:NAME`` for each enabled source, ``detect`` (runs the detection when
new data arrived; a source job that stored new data wakes it at once) and ``digest`` (sends
the email digests). Every job is the module-level function :func:`run_job` with simple
arguments (job id, configuration path), so that it persists; each attempt is recorded as a
``JobRun`` (see monitor/jobs.py), a failing job is retried with backoff and never stops the
others or the scheduler. SIGTERM or SIGINT stops the scheduler cleanly: no new job starts,
the running ones finish, the process exits with status 0.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import datetime, timezone
from typing import Callable

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_MISSED
from apscheduler.executors.base import run_job as _apscheduler_run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.store import db
from monitor.store.locks import scheduler_lock
from monitor.pipeline.jobs import ERROR, OK, SKIPPED, JobOutcome, Step, execute, mark_interrupted, record_missed
from monitor.store.models import JobRun, Submission
from monitor.config.settings import ConfigError, Settings, load_settings
from monitor.sources import pull_source
from monitor.sources.base import STOP
from monitor.vocabulary.errors import ServiceError

log = logging.getLogger("monitor.pipeline.scheduler")

JOBSTORE_TABLE = "apscheduler_jobs"
DETECT, DIGEST, SOURCE_PREFIX = "detect", "digest", "source:"

# The running scheduler of this process and its database (jobs find their engine here).
_RUNTIME: dict = {"engine": None, "scheduler": None}
# The scheduled time of the run a worker thread is executing (set by the executor below).
_CONTEXT = threading.local()


# --------------------------------------------------------------------------- job actions

def source_job_id(name: str) -> str:
    return SOURCE_PREFIX + name


def _source_step(settings: Settings, name: str) -> Callable[[sa.Engine], Step]:
    def action(engine: sa.Engine) -> Step:
        try:
            cfg = settings.source(name)
        except ConfigError as exc:
            return Step(outcome=ERROR, error=str(exc))
        result = pull_source(engine, cfg)
        return Step(outcome=ERROR if result.status == "error" else OK, counts=result.counts(),
                    error=result.error, retryable=result.retryable, new_data=result.accepted > 0)
    return action


def _ingested_count(conn) -> int:
    return int(conn.scalar(sa.select(sa.func.count()).select_from(Submission)
                           .where(Submission.status == "ingested", Submission.accepted > 0)) or 0)


def detection_due(engine: sa.Engine) -> tuple[bool, int]:
    """(due, submissions): detection is due when a submission that stored new observations
    was committed since the last successful ``detect`` job (submissions are never deleted,
    so their count tells it without clock or id races)."""
    with engine.connect() as conn:
        seen_counts = conn.scalar(sa.select(JobRun.counts).where(JobRun.job_id == DETECT, JobRun.outcome == OK)
                                  .order_by(JobRun.id.desc()).limit(1))
        count = _ingested_count(conn)
    seen = (seen_counts or {}).get("soumissions_vues")
    return (count > 0 and (seen is None or count > int(seen))), count


def detect_step(engine: sa.Engine) -> Step:
    due, count = detection_due(engine)
    if not due:
        return Step(outcome=SKIPPED, counts={"raison": "aucune donnée nouvelle depuis la dernière détection",
                                             "soumissions_vues": count})
    from monitor.pipeline.detection import run_detection

    db.require_schema(engine)
    summary = run_detection(engine)
    counts = {"mois": summary.months, "constats": sum(summary.findings.values()), "ouvertes": summary.opened,
              "rouvertes": summary.reopened, "résolues": summary.resolved, "soumissions_vues": count}
    if summary.up_to_date:
        counts["note"] = "détection déjà à jour"
    return Step(outcome=OK, counts=counts)


def _digest_function():
    """The digest sender (a seam for the tests)."""
    from alerts.notify.digest import send_digests

    return send_digests


def digest_step(engine: sa.Engine) -> Step:
    func = _digest_function()
    if func is None:
        return Step(outcome=SKIPPED, counts={"raison": "envoi des synthèses désactivé"})
    try:
        result = func(engine, dry_run=False)
    except ServiceError as exc:
        # a service error (e.g. some mails not sent: they stay in the outbox for the next run)
        report = getattr(exc, "run", None) or next((a for a in exc.args if not isinstance(a, str)), None)
        return Step(outcome=ERROR, error=str(exc), counts=_result_counts(report), retryable=True)
    return Step(outcome=OK, counts=_result_counts(result))


# counts of alerts.notify.digest.DigestRun, in French for ``spsti-monitor jobs``
_DIGEST_COUNTS_FR = {"prepared": "préparés", "sent": "envoyés", "failed": "en échec", "waiting": "en attente",
                     "interrupted": "interrompus", "not_due": "pas encore dus", "nothing_new": "sans nouveauté",
                     "no_region": "sans région"}


def _result_counts(result) -> dict:
    counts = _raw_counts(result)
    counts.pop("dry_run", None)
    return {_DIGEST_COUNTS_FR.get(k, k): v for k, v in counts.items()}


def _raw_counts(result) -> dict:
    import dataclasses

    if result is None:
        return {}
    if isinstance(result, dict):
        return dict(result)
    if isinstance(result, (int, float)):
        return {"envoyées": result}
    if dataclasses.is_dataclass(result):
        values = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
        return {k: v for k, v in values.items() if isinstance(v, (int, float, str, bool))}
    if isinstance(result, (list, tuple)):
        return {"envoyées": len(result)}
    return {"résultat": str(result)[:200]}


def job_action(settings: Settings, job_id: str) -> Callable[[sa.Engine], Step]:
    if job_id.startswith(SOURCE_PREFIX):
        return _source_step(settings, job_id[len(SOURCE_PREFIX):])
    if job_id == DETECT:
        return detect_step
    if job_id == DIGEST:
        return digest_step
    return lambda engine: Step(outcome=ERROR, error=f"tâche inconnue « {job_id} »")


def run_one(engine: sa.Engine, settings: Settings, job_id: str,
            scheduled_for: datetime | None = None) -> JobOutcome:
    """Run one job now, with the configured retries; every attempt is recorded."""
    sched = settings.schedule
    return execute(job_id, job_action(settings, job_id), engine, scheduled_for=scheduled_for,
                   retries=sched.retries, backoff=sched.retry_backoff_seconds,
                   backoff_max=sched.retry_backoff_max)


def run_job(job_id: str, config_path: str) -> str:
    """Entry point of every scheduled job (importable, simple arguments: it persists).

    Never raises: whatever happens is recorded as a JobRun."""
    scheduled_for = getattr(_CONTEXT, "scheduled_for", None)
    try:
        settings = load_settings(config_path)
        engine = _RUNTIME["engine"] or db.get_engine(settings.resolved_database_url())
    except (ConfigError, db.DatabaseError) as exc:
        message = str(exc)
        engine = _RUNTIME["engine"]
        if engine is None:
            log.error("tâche %s : %s", job_id, message)
            return ERROR
        return execute(job_id, lambda e: Step(outcome=ERROR, error=message), engine,
                       scheduled_for=scheduled_for).outcome
    outcome = run_one(engine, settings, job_id, scheduled_for)
    if outcome.new_data and job_id != DETECT:
        wake_detection()
    return outcome.outcome


def wake_detection() -> None:
    """Bring the ``detect`` job forward to now (new data arrived)."""
    sched = _RUNTIME["scheduler"]
    if sched is None:
        return
    try:
        if sched.get_job(DETECT) is not None:
            sched.modify_job(DETECT, next_run_time=datetime.now(timezone.utc))
    except Exception as exc:  # the job store may be unreachable: detection runs at its next time
        log.warning("impossible d'avancer la détection : %s", exc)


# --------------------------------------------------------------------------- APScheduler

def _run_with_context(job, jobstore_alias, run_times, logger_name):
    _CONTEXT.scheduled_for = run_times[-1].astimezone(timezone.utc) if run_times else None
    try:
        return _apscheduler_run_job(job, jobstore_alias, run_times, logger_name)
    finally:
        _CONTEXT.scheduled_for = None


class RecordingThreadPoolExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, telling each run its scheduled time (for the JobRun)."""

    def _do_submit_job(self, job, run_times):
        def callback(f):
            exc = f.exception()
            if exc:
                self._run_job_error(job.id, exc, getattr(exc, "__traceback__", None))
            else:
                self._run_job_success(job.id, f.result())

        f = self._pool.submit(_run_with_context, job, job._jobstore_alias, run_times, self._logger.name)
        f.add_done_callback(callback)


class ResilientBackgroundScheduler(BackgroundScheduler):
    """A scheduler whose loop survives a job store that fails mid-round (database down):
    APScheduler 3 lets such an error end its thread; here it waits and tries again."""

    def _process_jobs(self):
        try:
            return super()._process_jobs()
        except Exception as exc:
            self._logger.warning("Job store error while processing jobs (%s); retrying in %ss",
                                 exc, self.jobstore_retry_interval)
            return self.jobstore_retry_interval


def build_scheduler(engine: sa.Engine, settings: Settings, jobstore_retry_interval: float = 10.0) -> BackgroundScheduler:
    sched = settings.schedule
    scheduler = ResilientBackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOBSTORE_TABLE)},
        executors={"default": RecordingThreadPoolExecutor(max_workers=sched.max_workers)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": sched.misfire_grace_seconds},
        timezone=sched.timezone,
        jobstore_retry_interval=jobstore_retry_interval,
        daemon=True,
    )

    def on_missed(event):
        record_missed(engine, event.job_id, event.scheduled_run_time.astimezone(timezone.utc))

    scheduler.add_listener(on_missed, EVENT_JOB_MISSED)
    return scheduler


def desired_jobs(settings: Settings) -> dict[str, dict]:
    """The jobs the configuration asks for: id -> trigger, name."""
    tz = settings.schedule.timezone
    out = {}
    for src in settings.sources:
        if src.enabled:
            out[source_job_id(src.name)] = {"trigger": src.schedule.trigger(tz),
                                            "name": f"Collecte de la source {src.name} ({src.kind}, "
                                                    f"{src.schedule.describe_fr()})", "first_now": True}
    out[DETECT] = {"trigger": settings.schedule.detect.trigger(tz),
                   "name": f"Détection ({settings.schedule.detect.describe_fr()} et après toute donnée nouvelle)",
                   "first_now": False}
    if settings.schedule.digest is not None:
        out[DIGEST] = {"trigger": settings.schedule.digest.trigger(tz),
                       "name": f"Synthèses par courriel ({settings.schedule.digest.describe_fr()})", "first_now": False}
    return out


def _trigger_key(trigger) -> tuple:
    return type(trigger).__name__, str(trigger), str(getattr(trigger, "timezone", ""))


def sync_jobs(scheduler: BackgroundScheduler, settings: Settings) -> dict[str, list[str]]:
    """Make the job store match the configuration, keeping the next run time of every job
    whose schedule did not change (so that missed runs are caught up, once)."""
    report: dict[str, list[str]] = {"added": [], "kept": [], "updated": [], "removed": []}
    wanted = desired_jobs(settings)
    args = None
    config_path = str(settings.path)
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            scheduler.remove_job(job.id)
            report["removed"].append(job.id)
    grace = settings.schedule.misfire_grace_seconds
    for job_id, spec in wanted.items():
        args = (job_id, config_path)
        job = scheduler.get_job(job_id)
        if job is None:
            extra = {"next_run_time": datetime.now(timezone.utc)} if spec["first_now"] else {}
            scheduler.add_job(run_job, trigger=spec["trigger"], args=args, id=job_id, name=spec["name"],
                              replace_existing=True, **extra)
            report["added"].append(job_id)
            continue
        changed = False
        if tuple(job.args) != args or job.name != spec["name"] or job.misfire_grace_time != grace \
                or job.func_ref != f"{__name__}:run_job":
            scheduler.modify_job(job_id, func=run_job, args=args, name=spec["name"], misfire_grace_time=grace,
                                 coalesce=True, max_instances=1)
            changed = True
        if _trigger_key(job.trigger) != _trigger_key(spec["trigger"]):
            scheduler.reschedule_job(job_id, trigger=spec["trigger"])
            changed = True
        report["updated" if changed else "kept"].append(job_id)
    return report


def start_scheduler(engine: sa.Engine, settings: Settings, jobstore_retry_interval: float = 10.0) -> BackgroundScheduler:
    """Start the scheduler in a background thread, its jobs synchronised with ``settings``.

    Raises :class:`monitor.store.locks.LockBusy` when another scheduler runs on this database
    (checked first, so that it does not mark the other one's runs as interrupted)."""
    lock = scheduler_lock(engine).acquire()
    try:
        STOP.clear()
        mark_interrupted(engine)
        scheduler = build_scheduler(engine, settings, jobstore_retry_interval)
    except BaseException:
        lock.release()
        raise
    scheduler.db_lock = lock
    _RUNTIME.update(engine=engine, scheduler=scheduler)
    scheduler.start(paused=True)
    try:
        scheduler.sync_report = sync_jobs(scheduler, settings)
    except Exception:
        scheduler.shutdown(wait=False)
        _RUNTIME.update(engine=None, scheduler=None)
        lock.release()
        raise
    scheduler.resume()
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler, wait: bool = True) -> None:
    """Stop cleanly: no new run starts, waits between retries end, running jobs finish."""
    STOP.set()
    try:
        if scheduler.running:
            scheduler.shutdown(wait=wait)
    finally:
        lock = getattr(scheduler, "db_lock", None)
        if lock is not None:
            lock.release()
        if wait:
            STOP.clear()        # the jobs have ended: later direct runs may wait between retries
        if _RUNTIME["scheduler"] is scheduler:
            _RUNTIME.update(engine=None, scheduler=None)


def serve(engine: sa.Engine, settings: Settings, echo: Callable[[str], None] = print) -> int:
    """Run the scheduler in the foreground until SIGTERM or SIGINT; returns the exit status."""
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler = start_scheduler(engine, settings)
        report = scheduler.sync_report
        echo(f"Planificateur démarré sur {engine.url.render_as_string(hide_password=True)} "
             f"({len(scheduler.get_jobs())} tâche(s) ; ajoutées {len(report['added'])}, conservées "
             f"{len(report['kept'])}, modifiées {len(report['updated'])}, retirées {len(report['removed'])}). "
             f"Arrêt : Ctrl-C ou SIGTERM.")
        for job in scheduler.get_jobs():
            when = job.next_run_time.strftime("%Y-%m-%d %H:%M:%S %Z") if job.next_run_time else "en pause"
            echo(f"  {job.id} : {job.name} ; prochaine exécution {when}")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
        echo("Arrêt demandé : fin des tâches en cours…")
        stop_scheduler(scheduler, wait=True)
        echo("Planificateur arrêté proprement.")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_once(engine: sa.Engine, settings: Settings) -> list[JobOutcome]:
    """Every job once, now, in order: the sources, then detection, then the digests.

    Holds the scheduler lock meanwhile: it is a scheduler too (raises ``LockBusy`` when one runs)."""
    lock = scheduler_lock(engine).acquire()
    try:
        STOP.clear()
        outcomes = [run_one(engine, settings, source_job_id(s.name)) for s in settings.sources if s.enabled]
        outcomes.append(run_one(engine, settings, DETECT))
        if settings.schedule.digest is not None:
            outcomes.append(run_one(engine, settings, DIGEST))
        return outcomes
    finally:
        lock.release()
