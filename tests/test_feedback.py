"""Triage feeds back: precision by detector and indicator from decisions, response delays,
alerts nobody touched; within the user's regions, on both databases and from the CLI."""
from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from world import make_world  # noqa: E402

from alerts import followups, triage  # noqa: E402
from alerts.feedback import triage_feedback  # noqa: E402
from monitor.cli.main import cli  # noqa: E402


def _decide(engine, w):
    m = w.users["manager84"]
    triage.dismiss(engine, m, w.alerts["s0"], None, "faux_positif", "vérifié sur place")
    triage.dismiss(engine, m, w.alerts["s2"], None, "erreur_donnees", "le service a mal saisi")
    followups.create_follow_up(engine, m, [w.alerts["s4"]], "demande_explications", m.id,
                               date.today() + timedelta(days=30), None)
    triage.acknowledge(engine, w.users["agent93"], w.alerts["s1"], None, "vu")


def test_precision_delays_and_untouched_alerts(engine, tmp_path):
    w = make_world(engine, tmp_path)
    _decide(engine, w)
    later = datetime.now(timezone.utc) + timedelta(days=20)
    fb = triage_feedback(engine, w.users["national"], now=later)
    p = fb.precision.set_index("indicator")
    assert p.loc["vip_init_in_delay_rate", "decided"] == 1 and p.loc["vip_init_in_delay_rate", "faux_positif"] == 1
    assert p.loc["pdp_cases_per_1000", "erreur_donnees"] == 1        # bad data: the statistics were wrong
    assert p.loc["amt_per_1000", "suites"] == 1 and p.loc["amt_per_1000", "precision"] == 1.0
    vip = fb.precision[fb.precision["indicator"] == "vip_init_in_delay_rate"]
    assert list(vip["alerts"]) == [2] and list(vip["precision"]) == [0.0]   # one decided, wrong; one open
    d = fb.delays.set_index(["region_code", "severity"])
    assert d.loc[("93", "high"), "acknowledged"] == 1 and d.loc[("93", "high"), "median_days_to_ack"] < 1
    assert d.loc[("84", "low"), "followed_up"] == 1
    assert list(fb.untouched["id"]) == [w.alerts["s3"]]            # the one alert nobody looked at
    assert fb.untouched["days"].iloc[0] >= 19
    # an agent of 84 sees 84 only
    mine = triage_feedback(engine, w.users["agent84"], now=later)
    assert set(mine.delays["region_code"]) == {"84"} and mine.untouched.empty
    with pytest.raises(ValueError, match="au moins un jour"):
        triage_feedback(engine, w.users["national"], untouched_days=0)


def test_feedback_from_the_command_line(sqlite_engine, tmp_path):
    w = make_world(sqlite_engine, tmp_path)
    _decide(sqlite_engine, w)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    r = CliRunner().invoke(cli, ["--db", url, "alerts", "feedback", "--as", "dgt@travail.test", "--untouched-days",
                                 "1"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "Précision par détecteur et indicateur" in r.output and "Taux de VIP initiales dans le délai" in r.output
    assert "Délais de réponse par région et gravité" in r.output
    assert "Alertes sans aucune action depuis 1 jours ou plus : 0" in r.output   # all opened just now
    r = CliRunner().invoke(cli, ["--db", url, "alerts", "feedback", "--as", "intrus@example.com"])
    assert r.exit_code != 0 and "utilisateur inconnu" in r.output


def test_the_queue_flags_alerts_nobody_acted_on(engine, tmp_path):
    from monitor.readmodels.queue import queue_frame

    w = make_world(engine, tmp_path)
    triage.acknowledge(engine, w.users["agent84"], w.alerts["s0"], None, "vu")
    triage.comment(engine, w.users["agent84"], w.alerts["s2"], "à regarder")     # a comment is an action too
    later = date.today() + timedelta(days=20)
    q = queue_frame(engine, w.users["manager84"], today=later, untouched_days=14).set_index("id")
    assert not q.loc[w.alerts["s0"], "untouched"] and not q.loc[w.alerts["s2"], "untouched"]
    assert q.loc[w.alerts["s4"], "untouched"]
    assert not queue_frame(engine, w.users["manager84"], untouched_days=14)["untouched"].any()   # too recent


def test_managers_digest_flags_alerts_nobody_acted_on(sqlite_engine, tmp_path, monkeypatch):
    from alerts.notify.digest import build_digests

    monkeypatch.setenv("SPSTI_MONITOR_UNTOUCHED_DAYS", "10")
    w = make_world(sqlite_engine, tmp_path)
    triage.acknowledge(sqlite_engine, w.users["agent84"], w.alerts["s0"], None, "vu")
    later = datetime.now(timezone.utc) + timedelta(days=15)
    drafts = {d.recipient: d for d in build_digests(sqlite_engine, now=later, base_url="https://x.test").queued}
    manager = drafts["manager84@dreets.test"]
    assert sorted(r.id for r in manager.untouched) == sorted([w.alerts["s2"], w.alerts["s4"]])   # 84 only
    assert "Alertes sans aucune action depuis 10 jours ou plus : 2" in manager.body_text
    assert f"https://x.test/alerte?id={w.alerts['s4']}" in manager.body_text
    assert "sans action depuis 10 jours" in manager.subject
    assert all(not d.untouched for r, d in drafts.items() if r != "manager84@dreets.test")   # agents: no section
