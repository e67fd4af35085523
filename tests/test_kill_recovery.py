"""Real SIGKILLs: a ``detect`` killed at any point and run again gives the same alerts as an
uninterrupted run; a ``digest send`` killed between the SMTP server's acceptance and the
database update sends nothing twice. The processes are real subprocesses of the CLI."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from helpers import INDICATOR_COLUMNS, REGISTER_COLUMNS, indicator_rows, register_rows, write_csv  # noqa: E402

from alerts.export import export_alerts  # noqa: E402
from monitor.ingest.indicators import ingest_file  # noqa: E402
from monitor.ingest.register import load_register  # noqa: E402
from monitor.store import db, schema  # noqa: E402
from monitor.store.models import AlertEvent, DetectionState, DigestOutbox, Finding  # noqa: E402

pytestmark = pytest.mark.timeout(600)

MONTHS = [f"2024-{m:02d}" for m in range(1, 13)] + [f"2025-{m:02d}" for m in range(1, 10)]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPSTI_MONITOR_")}
    env.update(extra)
    return env


def _build(url: str, tmp_path: Path) -> sa.Engine:
    svcs = register_rows(24)
    rows = indicator_rows(svcs, MONTHS, seed=3)
    bad = svcs[5]["service_id"]
    for r in rows:                 # one service degrades for five months: alerts open and resolve
        if r["service_id"] == bad and r["indicator"] == "vip_init_in_delay_rate" and "2025-01" <= r["period"] <= "2025-05":
            r["numerator"] = int(r["denominator"] * 0.45)
            r["value"] = round(r["numerator"] / r["denominator"], 4)
    rows = [r for r in rows if not (r["service_id"] == svcs[7]["service_id"] and r["period"] == "2025-03")]
    write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS)
    write_csv(tmp_path / "ind.csv", rows, INDICATOR_COLUMNS)
    engine = db.get_engine(url)
    schema.init(engine)
    load_register(engine, tmp_path / "reg.csv")
    ingest_file(engine, tmp_path / "ind.csv")
    return engine


def _detect_cmd(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "monitor", "--db", url, "detect", *args]


def _killed_detect(url: str, marker: str, delay: float) -> bool:
    """Start ``detect``, SIGKILL it ``delay`` seconds after ``marker`` appears on its progress
    output. Returns whether the kill landed before the process ended by itself."""
    p = subprocess.Popen(_detect_cmd(url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=_env())
    try:
        for line in p.stderr:
            if marker in line:
                break
        time.sleep(delay)
        landed = p.poll() is None
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        return landed and p.returncode == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _counts(engine) -> tuple[int, int, int | None]:
    with engine.connect() as c:
        return (c.execute(sa.select(sa.func.count()).select_from(AlertEvent)).scalar_one(),
                c.execute(sa.select(sa.func.count()).select_from(Finding)).scalar_one(),
                c.execute(sa.select(DetectionState.last_month_index)).scalar())


def test_detect_killed_at_any_point_then_rerun_gives_the_same_alerts(db_url, tmp_path):
    (tmp_path / "ref").mkdir()
    ref = _build(f"sqlite:///{tmp_path / 'ref' / 'ref.db'}", tmp_path / "ref")
    done = subprocess.run(_detect_cmd(ref.url.render_as_string(hide_password=False)), capture_output=True,
                          text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    expected, expected_counts = export_alerts(ref, fmt="csv"), _counts(ref)
    assert expected.count("\n") > 2                       # the reference has alerts to compare

    engine = _build(db_url, tmp_path)
    # kills while reading, during the statistics, and around the one write transaction
    # (the first months processed as of 2024-12 first, so a later kill also has state to keep)
    first = subprocess.run(_detect_cmd(db_url, "--as-of", "2024-12"), capture_output=True, text=True,
                           env=_env(), timeout=300)
    assert first.returncode == 0, first.stderr
    before = _counts(engine)
    landed = [_killed_detect(db_url, marker, delay)
              for marker, delay in (("[1/9]", 0.0), ("[7/9]", 0.0), ("[9/9]", 0.3), ("[9/9]", 0.8))]
    assert any(landed), "no kill landed before the end of a run"
    after_kills = _counts(engine)
    # a killed run left either nothing or everything: state, findings and alerts move together
    assert after_kills == before or after_kills[2] == expected_counts[2]
    again = subprocess.run(_detect_cmd(db_url), capture_output=True, text=True, env=_env(), timeout=300)
    assert again.returncode == 0, again.stderr
    assert export_alerts(engine, fmt="csv") == expected
    assert _counts(engine)[0] == expected_counts[0]        # no event applied twice
    assert _counts(engine)[2] == expected_counts[2]


def test_digest_killed_after_the_server_accepted_sends_nothing_twice(sqlite_url, tmp_path):
    from aiosmtpd.controller import Controller
    from world import make_world

    engine = db.get_engine(sqlite_url)
    schema.init(engine)
    make_world(engine, tmp_path)
    received: list[list[str]] = []
    victim: dict[str, subprocess.Popen] = {}
    killed = threading.Event()

    class KillingHandler:
        async def handle_DATA(self, server, session, envelope):
            received.append(list(envelope.rcpt_tos))
            proc = victim.get("p")
            if proc is not None and not killed.is_set():
                # the message is in the server's hands; the sender dies before recording it
                os.kill(proc.pid, signal.SIGKILL)
                killed.set()
            return "250 Message accepted for delivery"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(KillingHandler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        env = _env(SPSTI_MONITOR_SMTP_HOST="127.0.0.1", SPSTI_MONITOR_SMTP_PORT=str(port),
                   SPSTI_MONITOR_SMTP_FROM="Veille <veille@dreets.test>", SPSTI_MONITOR_SMTP_STARTTLS="false",
                   SPSTI_MONITOR_BASE_URL="https://veille.test/")
        cmd = [sys.executable, "-m", "monitor", "--db", sqlite_url, "digest", "send"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        victim["p"] = p
        p.communicate(timeout=120)
        assert killed.is_set() and p.returncode == -signal.SIGKILL
        assert len(received) == 1
        victim.clear()
        for _ in range(2):                                  # run again, twice
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
            assert r.returncode == 0, r.stderr
        recipients = [r for rcpt in received for r in rcpt]
        assert len(recipients) == 4                         # each subscriber once in all
        assert len(set(recipients)) == len(recipients)      # nobody twice, the killed one included
        with engine.connect() as c:
            statuses = sorted(c.execute(sa.select(DigestOutbox.status)).scalars())
        assert statuses == ["sending", "sent", "sent", "sent"]   # the uncertain one is left for a person
    finally:
        controller.stop()
        engine.dispose()
