"""Alert lifecycle by people (alerts.triage) and by detection (alerts.lifecycle), together."""
from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from world import FIRST, detect, finding, make_world  # noqa: E402

from alerts import followups, triage  # noqa: E402
from monitor.vocabulary.errors import AccessDenied, InvalidAction  # noqa: E402
from monitor.store.models import Alert, AlertEvent  # noqa: E402

TODAY = date(2026, 1, 15)


def _events(engine, alert_id):
    with engine.connect() as c:
        return c.execute(sa.select(AlertEvent.actor, AlertEvent.kind, AlertEvent.from_status, AlertEvent.to_status,
                                   AlertEvent.comment, AlertEvent.details)
                         .where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)).all()


def test_queue_acknowledge_assign_comment_with_events(engine, tmp_path):
    w = make_world(engine, tmp_path)
    agent, other, manager = w.users["agent84"], w.users["agent84b"], w.users["manager84"]
    queue = triage.list_alerts(engine, agent)
    assert [v.id for v in queue] == [w.alerts["s0"], w.alerts["s2"], w.alerts["s4"]]   # high, medium, low
    assert {v.region_code for v in queue} == {"84"} and queue[0].service_name == "Service test 0"
    assert [v.id for v in triage.list_alerts(engine, agent, min_severity="medium")] == [w.alerts["s0"], w.alerts["s2"]]

    a = w.alerts["s0"]
    v = triage.acknowledge(engine, agent, a, 1, comment="Je prends")
    assert (v.status, v.status_label, v.version) == ("acknowledged", "prise en charge", 2)
    with pytest.raises(InvalidAction, match="Seule|Impossible de prendre en charge"):
        triage.acknowledge(engine, agent, a, 2)

    # an agent may take an alert for themself, not give it to someone else
    with pytest.raises(AccessDenied, match="seul un responsable"):
        triage.assign(engine, agent, a, 2, other.id)
    v = triage.assign(engine, agent, a, 2, agent.id)
    assert v.assignee_name == "Alice Agent"
    with pytest.raises(AccessDenied, match="seul un responsable"):
        triage.assign(engine, other, a, v.version, other.id)
    v = triage.assign(engine, manager, a, v.version, other.id, comment="Bruno connaît ce service")
    assert v.assignee_email == other.email
    # nobody outside the alert's region, no read-only role
    with pytest.raises(AccessDenied, match="n'a pas la région"):
        triage.assign(engine, manager, a, v.version, w.users["agent93"].id)
    with pytest.raises(AccessDenied, match="lecture seule"):
        triage.assign(engine, manager, a, v.version, w.users["national"].id)

    before = v.version
    v = triage.comment(engine, other, a, "  Appel au directeur prévu mardi  ")
    assert v.version == before                     # a comment changes nothing else
    with pytest.raises(InvalidAction, match="obligatoire"):
        triage.comment(engine, other, a, "   ")

    ev = _events(engine, a)
    assert [e.kind for e in ev] == ["opened", "acknowledged", "assigned", "assigned", "comment"]
    assert ev[0].actor == "détection"
    assert (ev[1].actor, ev[1].from_status, ev[1].to_status, ev[1].comment) == \
        (agent.email, "open", "acknowledged", "Je prends")
    assert ev[3].details == {"from": agent.email, "to": other.email}
    assert ev[3].comment == "Bruno connaît ce service"
    assert ev[4].comment == "Appel au directeur prévu mardi"


def test_snooze_hides_until_the_date_then_the_alert_comes_back_by_itself(engine, tmp_path):
    w = make_world(engine, tmp_path)
    agent, a = w.users["agent84"], w.alerts["s2"]
    until = TODAY + timedelta(days=14)
    with pytest.raises(InvalidAction, match="motif"):
        triage.snooze(engine, agent, a, 1, until, "", today=TODAY)
    with pytest.raises(InvalidAction, match="après aujourd'hui"):
        triage.snooze(engine, agent, a, 1, TODAY, "attente", today=TODAY)
    with pytest.raises(InvalidAction, match="un an"):
        triage.snooze(engine, agent, a, 1, TODAY + timedelta(days=400), "attente", today=TODAY)
    v = triage.snooze(engine, agent, a, 1, until, "Réponse du service attendue", today=TODAY)
    assert v.snoozed_until == until

    def queue(day):
        return [x.id for x in triage.list_alerts(engine, agent, today=day)]

    assert a not in queue(TODAY)
    assert a not in queue(until - timedelta(days=1))
    assert a in queue(until)                        # back on the date, no job needed
    assert a in [x.id for x in triage.list_alerts(engine, agent, include_snoozed=True, today=TODAY)]
    assert triage.get_alert(engine, agent, a, today=TODAY).snoozed
    assert not triage.get_alert(engine, agent, a, today=until).snoozed

    v = triage.unsnooze(engine, agent, a, v.version, comment="Réponse reçue", today=TODAY)
    assert v.snoozed_until is None and a in queue(TODAY)
    with pytest.raises(InvalidAction, match="pas en sourdine"):
        triage.unsnooze(engine, agent, a, v.version, today=TODAY)
    ev = _events(engine, a)
    assert [e.kind for e in ev] == ["opened", "snoozed", "unsnoozed"]
    assert ev[1].details == {"until": until.isoformat(), "previous": None}
    assert ev[1].comment == "Réponse du service attendue"


def test_dismiss_needs_a_listed_reason_and_a_comment_then_reopen(engine, tmp_path):
    w = make_world(engine, tmp_path)
    agent, a = w.users["agent84"], w.alerts["s0"]
    with pytest.raises(InvalidAction, match="Motif de classement inconnu : suspension"):
        triage.dismiss(engine, agent, a, 1, "suspension", "non")
    with pytest.raises(InvalidAction, match="commentaire du classement est obligatoire"):
        triage.dismiss(engine, agent, a, 1, "faux_positif", " ")
    v = triage.dismiss(engine, agent, a, 1, "erreur_donnees", "Effectif mal saisi par le service")
    assert (v.status, v.dismiss_reason, v.dismiss_reason_label) == ("dismissed", "erreur_donnees", "Erreur de données")
    assert a not in [x.id for x in triage.list_alerts(engine, agent)]
    assert a in [x.id for x in triage.list_alerts(engine, agent, statuses=("dismissed",))]
    with pytest.raises(InvalidAction, match="Impossible de classer"):
        triage.dismiss(engine, agent, a, v.version, "faux_positif", "encore")
    with pytest.raises(InvalidAction, match="motif de la réouverture"):
        triage.reopen(engine, agent, a, v.version, "")
    v = triage.reopen(engine, agent, a, v.version, "Le service a confirmé le chiffre")
    assert (v.status, v.dismiss_reason) == ("open", None)
    ev = _events(engine, a)
    assert [(e.kind, e.from_status, e.to_status) for e in ev[1:]] == \
        [("dismissed", "open", "dismissed"), ("reopened", "dismissed", "open")]
    assert ev[1].details["reason"] == "erreur_donnees"
    assert ev[2].details == {"previous_dismiss_reason": "erreur_donnees"}


def test_detection_respects_people_and_stays_idempotent(engine, tmp_path):
    """Dismissed alerts absorb their episode; alerts under an active follow-up are not resolved;
    a snooze ends when the severity rises; resolution after N normal periods; reopening."""
    w = make_world(engine, tmp_path)
    agent = w.users["agent84"]
    dismissed, followed, snoozed = w.alerts["s0"], w.alerts["s2"], w.alerts["s4"]
    triage.dismiss(engine, agent, dismissed, 1, "deja_connu", "Contrôle déjà en cours")
    fu = followups.create_follow_up(engine, agent, [followed], "controle_sur_pieces", agent.id,
                                    date.today() + timedelta(days=30), "Pièces demandées")
    triage.snooze(engine, agent, snoozed, 1, date.today() + timedelta(days=60), "Attente")

    s0, s2, s4 = w.svc(0), w.svc(2), w.svc(4)
    detect(engine, [finding(s0, "vip_init_in_delay_rate", "2025-04", "high"),
                    finding(s4, "amt_per_1000", "2025-04", "high")], ["2025-04"])
    with engine.connect() as c:
        rows = {r.id: r for r in c.execute(sa.select(Alert))}
    assert rows[dismissed].status == "dismissed"          # absorbed, no new alert
    assert rows[snoozed].snoozed_until is None and rows[snoozed].severity == "high"
    assert [e.kind for e in _events(engine, snoozed)][-2:] == ["severity", "unsnoozed"]
    n_alerts, n_events = len(rows), sum(len(_events(engine, i)) for i in rows)

    # three normal months: open alerts resolve, the followed one stays with its owner
    stats = detect(engine, [], ["2025-05", "2025-06", "2025-07"], resolve_after=3)
    with engine.connect() as c:
        status = dict(c.execute(sa.select(Alert.id, Alert.status)).all())
    assert status[followed] == "follow_up" and status[snoozed] == "resolved"
    assert stats.resolved >= 1
    followups.update_follow_up(engine, agent, fu.id, fu.version, status="terminee", comment="Pièces conformes")
    detect(engine, [], ["2025-08"], resolve_after=3)
    with engine.connect() as c:
        assert c.execute(sa.select(Alert.status).where(Alert.id == followed)).scalar_one() == "resolved"

    # the anomaly returns: the resolved alert reopens (same alert, event by détection)
    detect(engine, [finding(s4, "amt_per_1000", "2025-09", "medium")], ["2025-09"])
    assert _events(engine, snoozed)[-1].kind == "reopened"
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(Alert)).scalar_one() == n_alerts
        total = c.execute(sa.select(sa.func.count()).select_from(AlertEvent)).scalar_one()
    assert total > n_events


def test_resolve_after_is_configurable(engine, tmp_path):
    w = make_world(engine, tmp_path, with_alerts=False)
    detect(engine, [finding(w.svc(0), "vip_init_in_delay_rate", FIRST)], [FIRST])
    detect(engine, [], ["2025-04"], resolve_after=1)
    with engine.connect() as c:
        assert c.execute(sa.select(Alert.status)).scalar_one() == "resolved"
    with pytest.raises(ValueError):
        detect(engine, [], ["2025-05"], resolve_after=0)


def test_real_detection_run_then_triage(sqlite_engine, tmp_path):
    """On alerts from the real pipeline: triage, then a re-run of detection changes nothing."""
    from test_detection_pipeline import _load, _panel

    from monitor.pipeline.detection import run_detection
    from monitor.accounts.users import add_user

    _panel(tmp_path)
    _load(sqlite_engine, tmp_path)
    run_detection(sqlite_engine, as_of="2025-03")
    add_user(sqlite_engine, email="a@dreets.test", name="A", role="agent", regions="84,93,11",
             password="motdepasse-solide")
    queue = triage.list_alerts(sqlite_engine, "a@dreets.test")
    assert queue, "detection should have opened alerts"
    first = queue[0]
    triage.acknowledge(sqlite_engine, "a@dreets.test", first.id, first.version)
    with sqlite_engine.connect() as c:
        before = c.execute(sa.select(sa.func.count()).select_from(AlertEvent)).scalar_one()
    assert run_detection(sqlite_engine, as_of="2025-03").up_to_date
    with sqlite_engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(AlertEvent)).scalar_one() == before
    assert triage.get_alert(sqlite_engine, "a@dreets.test", first.id).status == "acknowledged"
