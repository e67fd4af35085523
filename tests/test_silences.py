"""Silences: a dismissal « explication fournie » or « déjà connu » mutes its key until the value
worsens or a date passes; visible with who and why, and revocable."""
from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from world import finding, make_world  # noqa: E402

from alerts import triage  # noqa: E402
from alerts.lifecycle import apply_findings, combine_findings  # noqa: E402
from alerts.silences import list_silences, revoke_silence  # noqa: E402
from monitor.cli.main import cli  # noqa: E402
from monitor.store import db  # noqa: E402
from monitor.store.models import Alert, Finding  # noqa: E402
from monitor.vocabulary.errors import AccessDenied, InvalidAction  # noqa: E402
from monitor.vocabulary.periods import month_index  # noqa: E402


def _run(engine, sid, indicator, value, periods):
    rows = [dict(finding(sid, indicator, p), detector="peer_funnel", value=value, sustain=False) for p in periods]
    with db.session_scope(engine) as s:
        return apply_findings(s, combine_findings(pd.DataFrame(rows)), [month_index(p) for p in periods],
                              resolve_after=3)


def _alerts(engine, sid, indicator):
    with engine.connect() as c:
        return c.execute(sa.select(Alert.id, Alert.status).where(Alert.service_id == sid, Alert.indicator == indicator)
                         .order_by(Alert.id)).all()


def _value_finding(engine, sid, indicator, value):
    from monitor.store.models import DetectionRun, utcnow

    with db.session_scope(engine) as s:
        run = DetectionRun(as_of="2025-03", first_period="2025-03", last_period="2025-03", status="ok",
                           started_at=utcnow())
        s.add(run)
        s.flush()
        s.execute(sa.insert(Finding.__table__).values(
            run_id=run.id, service_id=sid, indicator=indicator, period="2025-03", month_index=month_index("2025-03"),
            category="peer_outlier", detector="peer_funnel", detector_version="1", score=4.0, severity="medium",
            value=value, explanation="x"))


def test_an_explained_anomaly_stays_quiet_until_it_worsens(engine, tmp_path):
    w = make_world(engine, tmp_path)
    sid, ind = w.svc(0), "vip_init_in_delay_rate"          # lower is worse
    _value_finding(engine, sid, ind, 0.61)
    triage.dismiss(engine, w.users["manager84"], w.alerts["s0"], None, "explication_service",
                   "recrutement de deux médecins en cours")
    (sil,) = list_silences(engine, w.users["agent84"])
    assert sil.level == pytest.approx(0.61) and sil.until == date.today() + timedelta(days=365)
    assert sil.created_by == "manager84@dreets.test" and sil.reason_label == "Explication fournie par le service"
    # the episode ends (three normal months), then the anomaly comes back at the same level: no new alert
    _run(engine, sid, ind, None, [])
    with db.session_scope(engine) as ses:
        apply_findings(ses, pd.DataFrame(columns=["service_id", "indicator", "category", "month_index"]),
                       [month_index(p) for p in ("2025-04", "2025-05", "2025-06")], resolve_after=3)
    stats = _run(engine, sid, ind, 0.62, ["2025-07"])
    assert stats.silenced == 1 and [a.status for a in _alerts(engine, sid, ind)] == ["dismissed"]
    # worse than the dismissed level: the silence ends and an alert opens
    stats = _run(engine, sid, ind, 0.48, ["2025-08"])
    assert stats.opened == 1 and [a.status for a in _alerts(engine, sid, ind)] == ["dismissed", "open"]
    (ended,) = list_silences(engine, w.users["agent84"], active_only=False)
    assert not ended.active and ended.ended_reason == "worsened" and ended.ended_by == "détection"


def test_silences_are_revocable_scoped_and_only_for_the_right_reasons(engine, tmp_path):
    w = make_world(engine, tmp_path)
    with pytest.raises(InvalidAction, match="date de fin de silence"):
        triage.dismiss(engine, w.users["manager84"], w.alerts["s2"], None, "faux_positif", "non", until=date.today())
    triage.dismiss(engine, w.users["manager84"], w.alerts["s2"], None, "faux_positif", "non")
    assert list_silences(engine, w.users["agent84"]) == []                  # a false positive silences nothing
    with pytest.raises(InvalidAction, match="date à venir"):
        triage.dismiss(engine, w.users["manager84"], w.alerts["s4"], None, "deja_connu", "vu", until=date.today())
    triage.dismiss(engine, w.users["manager84"], w.alerts["s4"], None, "deja_connu", "signalé par la CARSAT",
                   until=date.today() + timedelta(days=90))
    (sil,) = list_silences(engine, w.users["agent84"])
    assert list_silences(engine, w.users["agent93"]) == []                   # other region: invisible
    with pytest.raises(AccessDenied):
        revoke_silence(engine, w.users["agent93"], sil.id)
    with pytest.raises(AccessDenied):
        revoke_silence(engine, w.users["national"], sil.id)                  # national reads, acts on nothing
    v = revoke_silence(engine, w.users["agent84"], sil.id, "la CARSAT n'a rien confirmé")
    assert not v.active and v.ended_reason == "revoked" and v.ended_by == "agent84@dreets.test"
    with pytest.raises(InvalidAction, match="plus en vigueur"):
        revoke_silence(engine, w.users["agent84"], sil.id)
    history = [h.summary_fr() for h in triage.alert_history(engine, w.users["agent84"], w.alerts["s4"])]
    assert any("silence n° " in h and "levé" in h for h in history)


def test_silences_from_the_command_line(sqlite_engine, tmp_path):
    w = make_world(sqlite_engine, tmp_path)
    url = sqlite_engine.url.render_as_string(hide_password=False)

    def run(*args):
        return CliRunner().invoke(cli, ["--db", url, *args, "--as", "manager84@dreets.test"], catch_exceptions=False)

    until = (date.today() + timedelta(days=60)).isoformat()
    r = run("alerts", "dismiss", str(w.alerts["s0"]), "--reason", "deja_connu", "--comment", "connu", "--until", until)
    assert r.exit_code == 0, r.output
    r = run("alerts", "silences")
    assert r.exit_code == 0 and "en vigueur" in r.output and "Déjà connu" in r.output, r.output
    sid = r.output.split("\t")[0]
    r = run("alerts", "unsilence", sid, "--comment", "fin")
    assert r.exit_code == 0 and f"Silence n° {sid} levé" in r.output
    assert "en vigueur" not in run("alerts", "silences", "--all").output


def test_a_silence_covers_the_periods_up_to_its_end_whenever_detection_runs(engine, tmp_path):
    """Detecting old periods again (a backfill, a late correction) after a silence's end date has
    passed mutes what a timely run muted; the periods after its end month are not muted."""
    from monitor.store.models import Silence

    w = make_world(engine, tmp_path)
    sid, ind = w.svc(0), "vip_init_in_delay_rate"
    _value_finding(engine, sid, ind, 0.61)
    triage.dismiss(engine, w.users["manager84"], w.alerts["s0"], None, "deja_connu", "connu de l'inspection")
    with db.session_scope(engine) as s:                  # its end date has passed since
        s.execute(sa.update(Silence).values(until=date(2025, 9, 15)))
    with db.session_scope(engine) as ses:
        apply_findings(ses, pd.DataFrame(columns=["service_id", "indicator", "category", "month_index"]),
                       [month_index(p) for p in ("2025-04", "2025-05", "2025-06")], resolve_after=3)
    assert _run(engine, sid, ind, 0.62, ["2025-09"]).silenced == 1          # within its months
    assert [a.status for a in _alerts(engine, sid, ind)] == ["dismissed"]
    with db.session_scope(engine) as ses:
        apply_findings(ses, pd.DataFrame(columns=["service_id", "indicator", "category", "month_index"]),
                       [month_index(p) for p in ("2025-10", "2025-11", "2025-12")], resolve_after=3)
    stats = _run(engine, sid, ind, 0.62, ["2026-01"])                       # after its end month
    assert stats.silenced == 0 and stats.opened == 1
