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


def _audit_ids(engine, table):
    with engine.connect() as c:
        return c.execute(sa.text(f"SELECT id, actor FROM {table} ORDER BY id")).all()


def test_replace_and_truncate_cannot_rewrite_or_empty_the_audit(engine, tmp_path):
    w = make_world(engine, tmp_path)
    followups.create_follow_up(engine, w.users["agent84"], [w.alerts["s0"]], "controle_sur_pieces",
                               w.users["agent84"].id, date.today() + timedelta(days=3))
    users_mod.update_user(engine, w.users["admin"], w.users["agent84"].id, min_severity="low")
    sqlite = engine.dialect.name == "sqlite"
    for table in ("alert_events", "follow_up_events", "user_events", "service_events"):
        before = _audit_ids(engine, table)
        assert before, table
        first = before[0][0]
        if sqlite:
            statements = [
                f"INSERT OR REPLACE INTO {table} SELECT * FROM {table} WHERE id = {first}",
                f"REPLACE INTO {table} SELECT * FROM {table} WHERE id = {first}",
                f"INSERT OR IGNORE INTO {table} SELECT * FROM {table} WHERE id = {first}",
            ]
        else:
            statements = [f"TRUNCATE {table} CASCADE", f"TRUNCATE TABLE {table}",
                          f"INSERT INTO {table} SELECT * FROM {table} WHERE id = {first} "
                          f"ON CONFLICT (id) DO UPDATE SET actor = 'x'"]
        for sql in statements:
            with pytest.raises(sa.exc.DatabaseError, match="append-only"):
                with engine.begin() as c:
                    c.execute(sa.text(sql))
        assert _audit_ids(engine, table) == before, table


def test_register_changes_leave_events(engine, tmp_path):
    from helpers import REGISTER_COLUMNS, write_csv
    from monitor.ingest.register import load_register
    from monitor.store.models import ServiceEvent

    w = make_world(engine, tmp_path, with_alerts=False)
    moved = dict(w.services[0], region_code="93", name="Service déménagé")
    write_csv(tmp_path / "register2.csv", [moved] + w.services[1:], REGISTER_COLUMNS)
    load_register(engine, tmp_path / "register2.csv")
    with engine.connect() as c:
        events = c.execute(sa.select(ServiceEvent.service_id, ServiceEvent.kind, ServiceEvent.from_value,
                                     ServiceEvent.to_value, ServiceEvent.actor).order_by(ServiceEvent.id)).all()
    created = [e for e in events if e.kind == "created"]
    assert len(created) == len(w.services)
    changes = [tuple(e[:4]) for e in events if e.kind != "created"]
    assert sorted(changes) == sorted([(w.svc(0), "name", w.services[0]["name"], "Service déménagé"),
                                      (w.svc(0), "region_code", w.services[0]["region_code"], "93")])
    assert all(e.actor == "registre register2.csv" for e in events if e.kind != "created")


def test_programme_versions_cannot_be_replaced_truncated_or_updated(engine):
    """The saved control programmes are their own audit trail (migration 0008); SQLite's
    REPLACE over an existing id is refused too (0009)."""
    import json

    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO programme_versions (region_code, year, capacity, weights, rows, saved_by, "
                          "saved_at, comment) VALUES ('84', 2027, 5, :w, :r, 'chef@dreets.test', :t, 'v1')"),
                  {"w": json.dumps({"alerte": 3}), "r": json.dumps([]), "t": datetime.now(timezone.utc)})
    def rows():
        with engine.connect() as c:
            return c.execute(sa.text("SELECT id, saved_by, comment FROM programme_versions ORDER BY id")).all()

    before = rows()
    first = before[0][0]
    if engine.dialect.name == "sqlite":
        statements = [f"INSERT OR REPLACE INTO programme_versions SELECT * FROM programme_versions WHERE id = {first}",
                      f"REPLACE INTO programme_versions SELECT * FROM programme_versions WHERE id = {first}",
                      "UPDATE programme_versions SET saved_by = 'x'"]
    else:
        statements = ["TRUNCATE programme_versions", "UPDATE programme_versions SET saved_by = 'x'",
                      f"INSERT INTO programme_versions SELECT * FROM programme_versions WHERE id = {first} "
                      f"ON CONFLICT (id) DO UPDATE SET saved_by = 'x'"]
    for sql in statements:
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with engine.begin() as c:
                c.execute(sa.text(sql))
    assert rows() == before
