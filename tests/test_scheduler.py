"""Scheduler: runs recorded, failures retried without stopping anything, the database down
for one run, restart without losing or repeating a job, misfires coalesced, SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from pull_helpers import csv_bytes, load_services, observations, submissions, write_config  # noqa: E402

from monitor.store import db, schema  # noqa: E402
from monitor.pipeline import jobs  # noqa: E402
from monitor.pipeline import scheduler as sch  # noqa: E402
from monitor.store.models import JobRun  # noqa: E402
from monitor.config.settings import load_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, body: str = "", *, every: float = 60, schedule: str = "") -> Path:
    drop = tmp_path / "depot"
    drop.mkdir(exist_ok=True)
    text = f"""
[schedule]
timezone = "Europe/Paris"
detect_cron = "0 3 * * *"
digest_cron = "0 7 * * 1-5"
retries = 1
retry_backoff_seconds = 0.01
{schedule}

[[sources]]
name = "depot"
kind = "folder"
every_seconds = {every}
path = "{drop.as_posix()}"
settle_seconds = 0
{body}
"""
    return write_config(tmp_path / "spsti.toml", text)


def _runs(engine, job_id: str | None = None) -> list:
    with engine.connect() as c:
        q = sa.select(JobRun).order_by(JobRun.id)
        if job_id:
            q = q.where(JobRun.job_id == job_id)
        return c.execute(q).all()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(timezone.utc).replace(tzinfo=None)


def _wait(predicate, timeout: float = 10.0, step: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def _aged(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    t = time.time() - 60
    os.utime(path, (t, t))


_real_digest_function = sch._digest_function


@pytest.fixture(autouse=True)
def _no_digest_module(monkeypatch):
    """Digests are another module's job: here they are reported as not yet available."""
    monkeypatch.setattr(sch, "_digest_function", lambda: None)


def test_run_once_records_every_job_and_detects_after_new_data(engine, tmp_path):
    svcs = load_services(engine, tmp_path)
    cfg = _config(tmp_path)
    settings = load_settings(cfg)
    _aged(tmp_path / "depot" / "janvier.csv", csv_bytes(svcs, ["2025-01", "2025-02"]))
    outcomes = sch.run_once(engine, settings)
    assert [(o.job_id, o.outcome) for o in outcomes] == [("source:depot", "ok"), ("detect", "ok"), ("digest", "skipped")]
    assert outcomes[0].counts["acceptées"] == len(svcs) * 3 * 2
    assert "désactivé" in outcomes[2].counts["raison"]
    runs = _runs(engine)
    assert [(r.job_id, r.outcome, r.attempt) for r in runs] == [
        ("source:depot", "ok", 1), ("detect", "ok", 1), ("digest", "skipped", 1)]
    assert all(r.started_at is not None and r.finished_at is not None for r in runs)
    assert runs[1].counts["mois"] == 2
    # nothing new: the source is not_modified and detection does not run again
    outcomes = sch.run_once(engine, settings)
    assert [(o.job_id, o.outcome) for o in outcomes] == [("source:depot", "ok"), ("detect", "skipped"), ("digest", "skipped")]
    assert outcomes[0].counts["statut"] == "not_modified"
    # new data: detection runs again
    _aged(tmp_path / "depot" / "mars.csv", csv_bytes(svcs, ["2025-03"]))
    assert [o.outcome for o in sch.run_once(engine, settings)][:2] == ["ok", "ok"]
    text = jobs.format_runs_fr(jobs.recent_runs(engine, 5))
    assert "Dernières exécutions" in text and "source:depot" in text and "réussi" in text


def test_failing_job_is_retried_recorded_and_never_stops_the_others(engine, tmp_path):
    svcs = load_services(engine, tmp_path)
    cfg = _config(tmp_path, every=0.5, body=f"""
[[sources]]
name = "entrepot"
kind = "sql"
every_seconds = 0.5
url = "sqlite:///{(tmp_path / 'absent' / 'dwh.db').as_posix()}"
query = "SELECT 1"
""")
    settings = load_settings(cfg)
    _aged(tmp_path / "depot" / "janvier.csv", csv_bytes(svcs, ["2025-01"]))
    scheduler = sch.start_scheduler(engine, settings)
    try:
        _wait(lambda: len([r for r in _runs(engine, "source:entrepot") if r.outcome == "error"]) >= 4)
        _wait(lambda: len([r for r in _runs(engine, "source:depot") if r.outcome == "ok"]) >= 2)
        assert scheduler.running
    finally:
        sch.stop_scheduler(scheduler)
    failed = [r for r in _runs(engine, "source:entrepot") if r.outcome != "running"]
    assert {r.attempt for r in failed} == {1, 2}            # [schedule] retries = 1: two attempts per run
    assert all("injoignable" in r.error for r in failed)
    assert all(r.outcome in ("ok", "skipped") for r in _runs(engine) if r.job_id != "source:entrepot")
    assert len(submissions(engine)) == 1


def _pg_allow_connections(url: str, allow: bool) -> None:
    name = sa.make_url(url).database
    admin = sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allow else "false"}'))
        if not allow:
            c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
    admin.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def test_database_unavailable_for_one_run(backend, tmp_path, request):
    """The project database goes away during one run: the failure is kept and recorded once
    the database is back, the next run succeeds, and the file is ingested exactly once."""
    if backend == "sqlite":
        (tmp_path / "db").mkdir()
        url = f"sqlite:///{tmp_path / 'db' / 'project.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = db.get_engine(url)
    schema.init(engine)
    svcs = load_services(engine, tmp_path)
    settings = load_settings(_config(tmp_path))
    _aged(tmp_path / "depot" / "janvier.csv", csv_bytes(svcs, ["2025-01"]))

    engine.dispose()
    if backend == "sqlite":
        (tmp_path / "db").rename(tmp_path / "db-away")
    else:
        _pg_allow_connections(url, False)
    try:
        down = sch.run_one(engine, settings, "source:depot")
        assert down.outcome == "error" and "base de données du projet injoignable" in down.error
        assert down.attempts == 2                      # retried once, then given up for this run
        assert jobs.pending_records(engine) == 2       # kept in memory while the database is away
    finally:
        if backend == "sqlite":
            (tmp_path / "db-away").rename(tmp_path / "db")
        else:
            _pg_allow_connections(url, True)

    up = sch.run_one(engine, settings, "source:depot")
    assert up.outcome == "ok" and up.counts["fichiers"] == 1
    assert jobs.pending_records(engine) == 0
    runs = _runs(engine, "source:depot")
    assert [(r.outcome, r.attempt) for r in runs] == [("error", 1), ("error", 2), ("ok", 1)]
    assert all(r.finished_at is not None for r in runs)
    assert "injoignable" in runs[0].error
    assert [s.status for s in submissions(engine)] == ["ingested"]
    assert len(observations(engine)) == len(svcs) * 3
    assert sch.run_one(engine, settings, "source:depot").counts["statut"] == "not_modified"
    engine.dispose()


def _next_runs(engine) -> dict:
    return {r.job_id: r.next_run_time for r in jobs.scheduled_jobs(engine).itertuples()}


def test_restart_loses_no_job_runs_none_twice_and_coalesces_misfires(engine, tmp_path):
    interval = 2.0
    settings = load_settings(_config(tmp_path, every=interval))
    first = sch.start_scheduler(engine, settings)
    try:
        assert set(first.sync_report["added"]) == {"source:depot", "detect", "digest"}
        _wait(lambda: [r for r in _runs(engine, "source:depot") if r.outcome != "running"])
    finally:
        sch.stop_scheduler(first)
    stopped_at = datetime.now(timezone.utc).replace(tzinfo=None)
    before = _next_runs(engine)
    assert set(before) == {"source:depot", "detect", "digest"}
    last = max(_utc(r.scheduled_for) for r in _runs(engine, "source:depot"))
    # down long enough to miss (at least) two runs of the source job
    wake = last + timedelta(seconds=2 * interval + 0.6)
    time.sleep(max(0.0, (wake - datetime.now(timezone.utc).replace(tzinfo=None)).total_seconds()))

    second = sch.start_scheduler(engine, load_settings(settings.path))
    resumed_at = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        assert second.sync_report["added"] == [] and sorted(second.sync_report["kept"]) == ["detect", "digest", "source:depot"]
        assert {j.id for j in second.get_jobs()} == {"source:depot", "detect", "digest"}     # no job lost
        _wait(lambda: [r for r in _runs(engine, "source:depot")
                       if r.outcome != "running" and _utc(r.scheduled_for) > stopped_at])
    finally:
        sch.stop_scheduler(second)
    after = _next_runs(engine)
    assert after["detect"] == before["detect"] and after["digest"] == before["digest"]    # schedules kept
    runs = _runs(engine, "source:depot")
    times = [_utc(r.scheduled_for) for r in runs]
    assert len(times) == len(set(times)), "a scheduled time ran twice"
    caught_up = [t for t in times if stopped_at < t <= resumed_at]
    assert len(caught_up) == 1, f"missed runs must be coalesced into one run: {times}"
    assert caught_up[0] >= last + timedelta(seconds=2 * interval - 0.5)    # the latest of two missed times
    assert all(r.outcome == "ok" and r.attempt == 1 for r in runs)
    assert not [r for r in _runs(engine) if r.outcome in ("missed", "running", "interrupted")]


def test_configuration_change_updates_the_stored_jobs(sqlite_engine, tmp_path):
    engine = sqlite_engine
    settings = load_settings(_config(tmp_path))
    s1 = sch.start_scheduler(engine, settings)
    sch.stop_scheduler(s1)
    cfg = _config(tmp_path, every=120, schedule="digest_enabled = false")
    s2 = sch.start_scheduler(engine, load_settings(cfg))
    try:
        assert s2.sync_report["removed"] == ["digest"] and s2.sync_report["updated"] == ["source:depot"]
        assert str(s2.get_job("source:depot").trigger) == "interval[0:02:00]"
    finally:
        sch.stop_scheduler(s2)


def test_interrupted_runs_are_marked_at_start(sqlite_engine, tmp_path):
    engine = sqlite_engine
    with db.session_scope(engine) as s:
        s.add(JobRun(job_id="source:depot", outcome="running", attempt=1))
    s1 = sch.start_scheduler(engine, load_settings(_config(tmp_path, every=3600)))
    sch.stop_scheduler(s1)
    run = _runs(engine)[0]
    assert run.outcome == "interrupted" and "interrompu" in run.error


def test_detection_job_only_after_new_data(sqlite_engine, tmp_path):
    engine = sqlite_engine
    svcs = load_services(engine, tmp_path)
    assert sch.detect_step(engine).outcome == "skipped"
    from monitor.ingest.indicators import ingest_file

    (tmp_path / "a.csv").write_bytes(csv_bytes(svcs, ["2025-01"]))
    ingest_file(engine, tmp_path / "a.csv")
    assert sch.detection_due(engine)[0]
    settings = load_settings(_config(tmp_path))
    assert sch.run_one(engine, settings, "detect").outcome == "ok"
    assert sch.run_one(engine, settings, "detect").outcome == "skipped"


def test_digest_job_calls_the_digest_module_when_present(sqlite_engine, tmp_path, monkeypatch):
    engine = sqlite_engine
    calls = []

    def send_digests(engine_, dry_run=True):
        calls.append(dry_run)
        return {"envoyées": 3}

    monkeypatch.setattr(sch, "_digest_function", lambda: send_digests)
    out = sch.run_one(engine, load_settings(_config(tmp_path)), "digest")
    assert out.outcome == "ok" and out.counts == {"envoyées": 3} and calls == [False]


def _main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """``spsti-monitor ARGS`` in this process (the SIGTERM test below runs a real process)."""
    from monitor.cli.main import main

    monkeypatch.setattr(sys, "argv", ["spsti-monitor", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_schedule_once_and_jobs(sqlite_engine, sqlite_url, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SPSTI_MONITOR_DB", raising=False)
    svcs = load_services(sqlite_engine, tmp_path)
    cfg = _config(tmp_path, schedule="digest_enabled = false")
    _aged(tmp_path / "depot" / "janvier.csv", csv_bytes(svcs, ["2025-01"]))
    monkeypatch.setenv("SPSTI_MONITOR_CONFIG", str(cfg))
    code, out, err = _main(monkeypatch, capsys, "--db", sqlite_url, "schedule", "--once")
    assert code == 0, err
    assert "source:depot : réussi" in out and "detect : réussi" in out
    code, out, err = _main(monkeypatch, capsys, "--db", sqlite_url, "jobs", "--limit", "5")
    assert code == 0, err
    assert "Dernières exécutions" in out and "source:depot" in out and "réussi" in out
    # a job in error: exit status 1 and one French sentence
    bad = write_config(tmp_path / "bad.toml", cfg.read_text().replace((tmp_path / "depot").as_posix(),
                                                                      (tmp_path / "nope").as_posix()))
    code, out, err = _main(monkeypatch, capsys, "--db", sqlite_url, "schedule", "--once", "--config", str(bad))
    assert code == 1 and err.strip().splitlines()[-1] == ("Erreur : 1 tâche(s) en échec : source:depot "
                                                          "(détail : « spsti-monitor jobs »)")
    assert "dossier de dépôt introuvable" in out
    monkeypatch.delenv("SPSTI_MONITOR_CONFIG")
    code, out, err = _main(monkeypatch, capsys, "--db", sqlite_url, "schedule", "--once")
    assert code == 1 and "SPSTI_MONITOR_CONFIG" in err and "Traceback" not in err
    write_config(bad, "[[sources]]\nname = \"x\"\nkind = \"ftp\"\n")
    code, out, err = _main(monkeypatch, capsys, "--db", sqlite_url, "schedule", "--config", str(bad))
    assert code == 1 and "sources[1] (x).kind" in err and "ftp" in err


def test_sigterm_stops_the_scheduler_cleanly(sqlite_engine, sqlite_url, tmp_path):
    cfg = _config(tmp_path, every=0.5)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPSTI_MONITOR_CONFIG": str(cfg)}
    env.pop("SPSTI_MONITOR_DB", None)
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--db", sqlite_url, "schedule"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        _wait(lambda: len(_runs(sqlite_engine, "source:depot")) >= 2, timeout=30)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Planificateur démarré" in out and "arrêté proprement" in out
    assert all(r.outcome != "running" for r in _runs(sqlite_engine))
    assert {j for j in jobs.scheduled_jobs(sqlite_engine)["job_id"]} == {"source:depot", "detect", "digest"}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def test_scheduler_survives_a_database_outage(backend, tmp_path, request):
    """The database (job store included) goes away while the scheduler runs: the scheduler
    keeps going and its jobs run again once the database is back."""
    if backend == "sqlite":
        (tmp_path / "db").mkdir()
        url = f"sqlite:///{tmp_path / 'db' / 'project.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = db.get_engine(url)
    schema.init(engine)
    settings = load_settings(_config(tmp_path, every=0.3))
    scheduler = sch.start_scheduler(engine, settings, jobstore_retry_interval=0.2)
    try:
        _wait(lambda: [r for r in _runs(engine, "source:depot") if r.outcome == "ok"])
        engine.dispose()
        if backend == "sqlite":
            (tmp_path / "db").rename(tmp_path / "db-away")
        else:
            _pg_allow_connections(url, False)
        time.sleep(1.2)
        if backend == "sqlite":
            (tmp_path / "db-away").rename(tmp_path / "db")
        else:
            _pg_allow_connections(url, True)
        back = datetime.now(timezone.utc).replace(tzinfo=None)
        _wait(lambda: [r for r in _runs(engine, "source:depot")
                       if r.outcome == "ok" and _utc(r.started_at) > back], timeout=15)
        assert scheduler.running and scheduler._thread.is_alive()
    finally:
        sch.stop_scheduler(scheduler)
        engine.dispose()
    assert jobs.pending_records(engine) == 0


def test_digest_job_with_the_real_digest_module(sqlite_engine, tmp_path, monkeypatch):
    """With no subscriber there is nothing to send: the run is recorded as ok, no SMTP needed."""
    monkeypatch.setattr(sch, "_digest_function", _real_digest_function)
    out = sch.run_one(sqlite_engine, load_settings(_config(tmp_path)), "digest")
    assert out.outcome == "ok", out.error
    assert out.counts.get("envoyés") == 0 and out.counts.get("en échec") == 0 and "dry_run" not in out.counts


def test_digest_job_records_a_delivery_failure(sqlite_engine, tmp_path, monkeypatch):
    from monitor.vocabulary.errors import ServiceError

    class DeliveryError(ServiceError):
        pass

    def send_digests(engine_, dry_run=False):
        raise DeliveryError("2 récapitulatif(s) non envoyé(s) : serveur SMTP injoignable ; ils seront renvoyés")

    monkeypatch.setattr(sch, "_digest_function", lambda: send_digests)
    out = sch.run_one(sqlite_engine, load_settings(_config(tmp_path)), "digest")
    assert out.outcome == "error" and out.attempts == 2 and out.error.startswith("2 récapitulatif(s) non envoyé(s)")


def test_new_data_wakes_the_detection_job(sqlite_engine, tmp_path):
    engine = sqlite_engine
    svcs = load_services(engine, tmp_path)
    settings = load_settings(_config(tmp_path, every=0.3))           # detect_cron: 03:00 only
    scheduler = sch.start_scheduler(engine, settings)
    try:
        _wait(lambda: [r for r in _runs(engine, "source:depot") if r.outcome == "ok"])
        assert not _runs(engine, "detect")
        _aged(tmp_path / "depot" / "janvier.csv", csv_bytes(svcs, ["2025-01", "2025-02"]))
        _wait(lambda: [r for r in _runs(engine, "detect") if r.outcome == "ok"], timeout=20)
        assert scheduler.get_job("detect").next_run_time.hour == 3         # back on its own schedule
    finally:
        sch.stop_scheduler(scheduler)
    detect = [r for r in _runs(engine, "detect") if r.outcome == "ok"]
    assert len(detect) == 1 and detect[0].counts["mois"] == 2
