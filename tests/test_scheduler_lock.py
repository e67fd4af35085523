"""One scheduler per database: a second one refuses to start, in-process and from the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from test_scheduler import _config  # noqa: E402

from monitor.config.settings import load_settings  # noqa: E402
from monitor.pipeline import scheduler as sch  # noqa: E402
from monitor.store import db  # noqa: E402
from monitor.store.locks import LockBusy  # noqa: E402
from monitor.store.models import JobRun  # noqa: E402


def test_second_scheduler_on_the_same_database_refuses_to_start(engine, tmp_path):
    settings = load_settings(_config(tmp_path, every=3600))
    first = sch.start_scheduler(engine, settings)
    try:
        with db.session_scope(engine) as s:
            run = JobRun(job_id="probe", outcome="running", attempt=1)     # one of the first one's runs
            s.add(run)
            s.flush()
            run_id = run.id
        # another process would open its own engine: same URL, fresh connections
        other = sa.create_engine(engine.url.render_as_string(hide_password=False))
        try:
            with pytest.raises(LockBusy, match="un autre planificateur tourne déjà"):
                sch.start_scheduler(other, settings)
        finally:
            other.dispose()
        with engine.connect() as c:       # the refused one did not mark the first one's run interrupted
            assert c.execute(sa.select(JobRun.outcome).where(JobRun.id == run_id)).scalar_one() == "running"
        assert first.running
    finally:
        sch.stop_scheduler(first)
    again = sch.start_scheduler(engine, settings)        # the lock is released at stop
    sch.stop_scheduler(again)


@pytest.mark.timeout(180)
def test_schedule_command_refuses_a_second_scheduler(sqlite_url, tmp_path):
    subprocess.run([sys.executable, "-m", "monitor", "--db", sqlite_url, "init"], check=True, timeout=120,
                   capture_output=True)
    cfg = _config(tmp_path, every=3600)
    env = {**os.environ, "SPSTI_MONITOR_CONFIG": str(cfg)}
    first = subprocess.Popen([sys.executable, "-m", "monitor", "--db", sqlite_url, "schedule"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "Planificateur démarré" not in line and time.monotonic() < deadline:
            line = first.stdout.readline()
        assert "Planificateur démarré" in line
        second = subprocess.run([sys.executable, "-m", "monitor", "--db", sqlite_url, "schedule"],
                                capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode != 0
        assert "un autre planificateur tourne déjà" in second.stderr and "Traceback" not in second.stderr
        once = subprocess.run([sys.executable, "-m", "monitor", "--db", sqlite_url, "schedule", "--once"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert once.returncode != 0 and "un autre planificateur tourne déjà" in once.stderr
        assert first.poll() is None
    finally:
        first.terminate()
        first.wait(60)
