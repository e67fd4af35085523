"""One status vocabulary: the transition table is what the service layer enforces.

Every action is tried on an alert in every status through the real service functions; it
must succeed exactly when ``statuses.allowed`` says so, and lead to ``statuses.target``.
"""
from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from world import make_world  # noqa: E402

from alerts import followups, triage  # noqa: E402
from monitor.store import db  # noqa: E402
from monitor.store.models import Alert  # noqa: E402
from monitor.vocabulary.errors import InvalidAction  # noqa: E402
from monitor.vocabulary.statuses import (ALERT_STATUSES, TRANSITIONS, Action, AlertStatus, FollowUpStatus,  # noqa: E402
                                         allowed, follow_up_label, require_transition, status_label, target)


def _force_status(engine, alert_id: int, status: str) -> None:
    with db.session_scope(engine) as s:
        s.execute(sa.update(Alert).where(Alert.id == alert_id).values(status=status, snoozed_until=None, assignee_id=None))


def _status(engine, alert_id: int) -> str:
    with engine.connect() as c:
        return c.execute(sa.select(Alert.status).where(Alert.id == alert_id)).scalar()


def _call(engine, world, action: Action, alert_id: int):
    manager = world.users["manager84"]
    if action is Action.ACKNOWLEDGE:
        return triage.acknowledge(engine, manager, alert_id, None, "vu")
    if action is Action.ASSIGN:
        return triage.assign(engine, manager, alert_id, None, world.users["agent84"].id, None)
    if action is Action.SNOOZE:
        return triage.snooze(engine, manager, alert_id, None, date.today() + timedelta(days=10), "congés")
    if action is Action.DISMISS:
        return triage.dismiss(engine, manager, alert_id, None, "faux_positif", "vérifié")
    if action is Action.REOPEN:
        return triage.reopen(engine, manager, alert_id, None, "revu")
    if action is Action.FOLLOW_UP:
        return followups.create_follow_up(engine, manager, [alert_id], "demande_explications",
                                          world.users["manager84"].id, date.today() + timedelta(days=30), None)
    raise AssertionError(action)


PERSON_ACTIONS = [a for a in Action if a is not Action.RESOLVE]


@pytest.mark.parametrize("action", PERSON_ACTIONS, ids=str)
def test_the_service_layer_follows_the_transition_table(sqlite_engine, tmp_path, action):
    engine = sqlite_engine
    world = make_world(engine, tmp_path)
    alert_id = world.alerts["s0"]
    for status in ALERT_STATUSES:
        _force_status(engine, alert_id, status)
        if allowed(action, status):
            _call(engine, world, action, alert_id)
            assert _status(engine, alert_id) == target(action, status), (action, status)
        else:
            with pytest.raises(InvalidAction):
                _call(engine, world, action, alert_id)
            assert _status(engine, alert_id) == status, (action, status)


def test_the_table_reads_as_the_lifecycle():
    assert [str(s) for s in ALERT_STATUSES] == ["open", "acknowledged", "follow_up", "dismissed", "resolved"]
    assert target(Action.ACKNOWLEDGE, "open") == AlertStatus.ACKNOWLEDGED
    assert target(Action.ASSIGN, "follow_up") == AlertStatus.FOLLOW_UP          # assignment keeps the status
    assert not allowed(Action.REOPEN, "open") and allowed(Action.REOPEN, "resolved")
    assert not allowed(Action.FOLLOW_UP, "dismissed")
    assert set(TRANSITIONS) == set(Action)


def test_refusals_and_labels_are_french():
    with pytest.raises(InvalidAction, match="Impossible de prendre en charge une alerte au statut « classée » "
                                            r"\(statuts permis : ouverte\)"):
        require_transition(Action.ACKNOWLEDGE, "dismissed")
    assert status_label("follow_up") == "suite engagée" and status_label("inconnu") == "inconnu"
    assert status_label(None) == "—" and AlertStatus.ACKNOWLEDGED.title == "Prise en charge"
    assert follow_up_label("en_cours") == "En cours" and [str(s) for s in FollowUpStatus] == [
        "a_faire", "en_cours", "terminee", "abandonnee"]
