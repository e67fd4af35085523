"""A period after the current month is not data: quarantined at ingest, ignored by detection,
and ``detect --rebuild`` recovers a state that a far-future period pushed ahead."""
from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from helpers import INDICATOR_COLUMNS, REGISTER_COLUMNS, indicator_rows, register_rows, write_csv  # noqa: E402
from test_cli_ingest import error_lines, run  # noqa: E402

from monitor.ingest.indicators import ingest_file  # noqa: E402
from monitor.ingest.register import load_register  # noqa: E402
from monitor.pipeline.detection import rebuild_state, run_detection  # noqa: E402
from monitor.store.models import DetectionRun, DetectionState, Observation, Quarantine, Submission, utcnow  # noqa: E402
from monitor.vocabulary.periods import current_month_index, month_index, month_label  # noqa: E402

MONTHS = [f"2024-{m:02d}" for m in range(1, 13)] + [f"2025-{m:02d}" for m in range(1, 7)]


def _setup(engine, tmp_path, months=MONTHS):
    svcs = register_rows(12)
    write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS)
    load_register(engine, tmp_path / "reg.csv")
    write_csv(tmp_path / "ind.csv", indicator_rows(svcs, months, seed=5), INDICATOR_COLUMNS)
    ingest_file(engine, tmp_path / "ind.csv")
    return svcs


def _state(engine):
    with engine.connect() as c:
        return c.execute(sa.select(DetectionState.last_month_index)).scalar()


def test_future_periods_are_quarantined_with_their_line(engine, tmp_path):
    svcs = _setup(engine, tmp_path)
    sid = svcs[0]["service_id"]
    nxt = month_label(current_month_index() + 1)
    this_year = str(current_month_index() // 12)
    (tmp_path / "futur.csv").write_text(
        "service_id,period,indicator,value\n"
        f"{sid},2099-12,physician_fte,18.6\n"
        f"{sid},{nxt},physician_fte,18.6\n"
        f"{sid},{int(this_year) + 1}-Q1,physician_fte,18.6\n"
        f"{sid},{this_year},cotisation_vs_cmn_ratio,1.01\n"
        f"{sid},2025-07,physician_fte,18.6\n", encoding="utf-8")
    r = run(engine, "ingest", str(tmp_path / "futur.csv"))
    assert r.returncode == 0 and error_lines(r) == []
    assert "acceptées 2, rejetées 3" in r.stdout and "période future" in r.stdout
    with engine.connect() as c:
        q = c.execute(sa.select(Quarantine.row_number, Quarantine.reason, Quarantine.month_index)
                      .where(Quarantine.reason_code == "future_period").order_by(Quarantine.row_number)).all()
        assert [x.row_number for x in q] == [2, 3, 4]
        assert all(x.reason.startswith("période future") and x.month_index is None for x in q)
        assert c.execute(sa.select(sa.func.max(Observation.month_index))).scalar() <= current_month_index() + 11
    summary = run_detection(engine)
    assert summary.last_month == month_index("2025-07")


def test_detect_ignores_a_future_period_already_stored(engine, tmp_path):
    _setup(engine, tmp_path)
    _poison(engine, with_run=False)
    summary = run_detection(engine)
    assert summary.last_month == month_index(MONTHS[-1])
    assert _state(engine) == month_index(MONTHS[-1])


def _poison(engine, with_run: bool) -> None:
    """What the old ingest and detect left: a 2099-12 observation stored, the state at 2099-12."""
    with engine.begin() as c:
        sub = c.execute(sa.insert(Submission).values(source="cli", file_name="futur.csv", checksum="x" * 64,
                                                     status="ingested", received_at=utcnow())
                        .returning(Submission.id)).scalar_one()
        sid = c.execute(sa.select(Observation.service_id).limit(1)).scalar_one()
        c.execute(sa.insert(Observation).values(service_id=sid, indicator="physician_fte", period="2099-12",
                                                period_kind="M", month_index=month_index("2099-12"), value=18.6,
                                                version=1, is_current=True, submission_id=sub, row_number=2))
        if with_run:
            now = utcnow()
            c.execute(sa.insert(DetectionRun).values(as_of="2099-12", first_period=month_label(
                month_index(MONTHS[-1]) + 1), last_period="2099-12", status="ok", started_at=now, finished_at=now))
            c.execute(sa.update(DetectionState).values(last_month_index=month_index("2099-12")))


def test_rebuild_recovers_a_state_pushed_to_2099(engine, tmp_path):
    svcs = _setup(engine, tmp_path)
    run_detection(engine)
    assert _state(engine) == month_index(MONTHS[-1])
    _poison(engine, with_run=True)
    # a real month arrives after the poisoning: the stuck state would call it « déjà à jour »
    write_csv(tmp_path / "july.csv", indicator_rows(svcs, ["2025-07"], seed=6), INDICATOR_COLUMNS)
    ingest_file(engine, tmp_path / "july.csv")
    assert run_detection(engine).up_to_date
    r = run(engine, "detect", "--rebuild")
    assert r.returncode == 0, r.stderr
    assert "reconstruit" in r.stdout and "dernière période traitée 2025-06 (était 2099-12)" in r.stdout
    assert "Détection de 2025-07 à 2025-07" in r.stdout
    assert _state(engine) == month_index("2025-07")
    # normal months are processed again
    write_csv(tmp_path / "aug.csv", indicator_rows(svcs, ["2025-08"], seed=7), INDICATOR_COLUMNS)
    ingest_file(engine, tmp_path / "aug.csv")
    assert run_detection(engine).last_month == month_index("2025-08")
    assert rebuild_state(engine).after == month_index("2025-08")      # a sound state is kept


def test_detect_as_of_a_future_period_is_refused(sqlite_url):
    run(sqlite_url, "init")
    r = run(sqlite_url, "detect", "--as-of", "2099-12")
    assert r.returncode != 0 and "période future" in " ".join(error_lines(r))
