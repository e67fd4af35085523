"""Audit: every change recorded (who, when, from what, to what, why), append-only in the database."""
from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from world import make_world  # noqa: E402

from alerts import followups, triage  # noqa: E402
from monitor.accounts import users as users_mod  # noqa: E402


def test_alert_history_in_one_call_with_follow_up_events(engine, tmp_path):
    w = make_world(engine, tmp_path)
    agent, manager = w.users["agent84"], w.users["manager84"]
    a = w.alerts["s0"]
    t0 = datetime.now(timezone.utc) - timedelta(seconds=5)
    v = triage.acknowledge(engine, agent, a, 1, comment="Je regarde")
    v = triage.assign(engine, manager, a, v.version, agent.id)
    triage.comment(engine, agent, a, "Le directeur rappelle demain")
    fu = followups.create_follow_up(engine, manager, [a], "lettre_observations", agent.id,
                                    date.today() + timedelta(days=20), "Projet de lettre")
    followups.update_follow_up(engine, agent, fu.id, fu.version, status="en_cours")

    history = triage.alert_history(engine, w.users["national"], a)
    assert [(h.kind, h.follow_up_id is not None) for h in history] == [
        ("opened", False), ("acknowledged", False), ("assigned", False), ("comment", False),
        ("created", True), ("follow_up", False), ("status", True)]
    assert [h.actor for h in history] == ["détection", agent.email, manager.email, agent.email,
                                          manager.email, manager.email, agent.email]
    assert history[0].actor_name == "la détection automatique" and history[1].actor_name == "Alice Agent"
    assert all(t0 <= h.at <= datetime.now(timezone.utc) for h in history)
    assert [h.at for h in history] == sorted(h.at for h in history)
    ack = history[1]
    assert (ack.from_value, ack.to_value, ack.comment) == ("ouverte", "prise en charge", "Je regarde")
    assert history[6].from_value == "À faire" and history[6].to_value == "En cours"
    assert "Alice Agent — prise en charge (ouverte → prise en charge) : Je regarde" in ack.summary_fr()
    assert "suite n° " in history[4].summary_fr()


def test_audit_tables_refuse_update_and_delete_from_any_caller(engine, tmp_path):
    w = make_world(engine, tmp_path)
    followups.create_follow_up(engine, w.users["agent84"], [w.alerts["s0"]], "controle_sur_pieces",
                               w.users["agent84"].id, date.today() + timedelta(days=3))
    users_mod.update_user(engine, w.users["admin"], w.users["agent84"].id, min_severity="low")
    for table in ("alert_events", "follow_up_events", "user_events"):
        with engine.connect() as c:
            before = c.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
        assert before >= 1, table
        for sql in (f"UPDATE {table} SET actor = 'quelqu''un d''autre'", f"DELETE FROM {table}",
                    f"UPDATE {table} SET comment = NULL WHERE id = (SELECT min(id) FROM {table})"):
            with pytest.raises(sa.exc.DatabaseError, match="append-only"):
                with engine.begin() as c:
                    c.execute(sa.text(sql))
        with engine.connect() as c:
            assert c.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == before
            assert c.execute(sa.text(f"SELECT count(*) FROM {table} WHERE actor LIKE 'quelqu%'")).scalar_one() == 0
