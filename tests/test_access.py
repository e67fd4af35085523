"""Roles and regions, enforced by the service layer for every read and write, whoever calls."""
from __future__ import annotations

import csv
import io
import json
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from world import make_world  # noqa: E402

from alerts import followups, triage  # noqa: E402
from monitor.vocabulary.errors import AccessDenied  # noqa: E402
from monitor.accounts.access import Actor  # noqa: E402
from alerts.export import export_alerts_for  # noqa: E402
from monitor.accounts import users as users_mod  # noqa: E402
from monitor.store.models import AlertEvent, FollowUp, User, UserEvent  # noqa: E402

DUE = date.today() + timedelta(days=30)


def _reads(engine, alert_id, fu_id):
    return {
        "get_alert": lambda u: triage.get_alert(engine, u, alert_id),
        "alert_history": lambda u: triage.alert_history(engine, u, alert_id),
        "list_alerts": lambda u: triage.list_alerts(engine, u, region="93"),
        "export_alerts": lambda u: export_alerts_for(engine, u, region="93"),
        "get_follow_up": lambda u: followups.get_follow_up(engine, u, fu_id),
        "follow_up_history": lambda u: followups.follow_up_history(engine, u, fu_id),
        "list_follow_ups": lambda u: followups.list_follow_ups(engine, u, region="93"),
        "export_follow_ups": lambda u: followups.export_follow_ups_csv(engine, u, region="93"),
    }


def _writes(engine, alert_id, fu_id, owner_id):
    return {
        "acknowledge": lambda u: triage.acknowledge(engine, u, alert_id, None),
        "assign": lambda u: triage.assign(engine, u, alert_id, None, owner_id),
        "comment": lambda u: triage.comment(engine, u, alert_id, "vu"),
        "snooze": lambda u: triage.snooze(engine, u, alert_id, None, DUE, "attente"),
        "unsnooze": lambda u: triage.unsnooze(engine, u, alert_id, None),
        "dismiss": lambda u: triage.dismiss(engine, u, alert_id, None, "faux_positif", "non"),
        "reopen": lambda u: triage.reopen(engine, u, alert_id, None, "oui"),
        "create_follow_up": lambda u: followups.create_follow_up(engine, u, [alert_id], "controle_sur_pieces",
                                                                 owner_id, DUE),
        "update_follow_up": lambda u: followups.update_follow_up(engine, u, fu_id, None, notes="x"),
    }


def _world_with_follow_up(engine, tmp_path):
    w = make_world(engine, tmp_path)
    a93 = w.alerts["s3"]
    fu = followups.create_follow_up(engine, w.users["agent93"], [w.alerts["s1"]], "demande_explications",
                                    w.users["agent93"].id, DUE, "Courrier envoyé")
    return w, a93, fu.id


def _count(engine, model):
    with engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def test_agent_of_84_can_neither_read_nor_write_an_alert_of_93(engine, tmp_path):
    w, a93, fu93 = _world_with_follow_up(engine, tmp_path)
    agent84 = w.users["agent84"]
    events, fus = _count(engine, AlertEvent), _count(engine, FollowUp)
    for name, call in {**_reads(engine, a93, fu93),
                       **_writes(engine, a93, fu93, agent84.id)}.items():
        with pytest.raises(AccessDenied, match="Provence-Alpes-Côte d'Azur \\(93\\), hors de vos régions \\(84\\)"):
            call(agent84)
            pytest.fail(f"{name} let an agent of 84 reach region 93")
    assert (_count(engine, AlertEvent), _count(engine, FollowUp)) == (events, fus)   # nothing written
    # unfiltered listings only show 84
    assert {v.region_code for v in triage.list_alerts(engine, agent84, statuses=None)} == {"84"}
    assert followups.list_follow_ups(engine, agent84) == []
    rows = list(csv.DictReader(io.StringIO(export_alerts_for(engine, agent84))))
    assert rows and {r["region_code"] for r in rows} == {"84"}
    # the agent of 93 can do it all
    agent93 = w.users["agent93"]
    for name, call in _reads(engine, a93, fu93).items():
        call(agent93)
    triage.acknowledge(engine, agent93, a93, None)


def test_whatever_the_caller_claims_rights_come_from_the_database(engine, tmp_path):
    w, a93, _ = _world_with_follow_up(engine, tmp_path)
    forged = Actor(id=0, email="agent84@dreets.test", name="x", role="admin", regions=None)      # claims to be admin
    with pytest.raises(AccessDenied, match="hors de vos régions"):
        triage.get_alert(engine, forged, a93)
    with pytest.raises(AccessDenied, match="utilisateur inconnu"):
        triage.list_alerts(engine, "intrus@example.com")
    # a disabled account can do nothing, even with its User object still in a session
    users_mod.update_user(engine, w.users["admin"], w.users["agent93"].id, active=False)
    with pytest.raises(AccessDenied, match="désactivé"):
        triage.get_alert(engine, w.users["agent93"], a93)
    # an account left without regions sees nothing
    with engine.begin() as c:
        c.execute(sa.update(User).where(User.id == w.users["agent84b"].id).values(regions=""))
    assert triage.list_alerts(engine, w.users["agent84b"], statuses=None) == []
    with pytest.raises(AccessDenied, match="aucune région"):
        triage.get_alert(engine, w.users["agent84b"], w.alerts["s0"])


def test_national_reads_every_region_and_writes_nothing_admin_does_both(engine, tmp_path):
    w, a93, fu93 = _world_with_follow_up(engine, tmp_path)
    national, admin = w.users["national"], w.users["admin"]
    assert {v.region_code for v in triage.list_alerts(engine, national, statuses=None)} == {"84", "93"}
    for name, call in _reads(engine, a93, fu93).items():
        call(national)
    js = json.loads(export_alerts_for(engine, national, fmt="json"))
    assert {r["region_code"] for r in js} == {"84", "93"}
    for name, call in _writes(engine, a93, fu93, w.users["agent93"].id).items():
        with pytest.raises(AccessDenied, match="rôle national est en lecture seule"):
            call(national)
            pytest.fail(f"{name} let the national level write")
    v = triage.acknowledge(engine, admin, a93, None)
    assert v.status == "acknowledged"
    triage.assign(engine, admin, a93, v.version, w.users["agent93"].id)
    followups.update_follow_up(engine, admin, fu93, None, notes="Relu par l'administration")


def test_user_administration_is_admin_only_and_audited(engine, tmp_path):
    w = make_world(engine, tmp_path, with_alerts=False)
    admin, manager, agent = w.users["admin"], w.users["manager84"], w.users["agent84"]
    with pytest.raises(AccessDenied, match="administrateur"):
        users_mod.list_users(engine, manager)
    with pytest.raises(AccessDenied, match="administrateur"):
        users_mod.update_user(engine, manager, agent.id, regions="84,93")
    listed = users_mod.list_users(engine, admin)
    assert {u.email for u in listed} == {u.email for u in w.users.values()}

    v = users_mod.update_user(engine, admin, agent.id, regions="93, 84", digest="weekly", min_severity="high",
                              comment="Renfort PACA")
    assert (v.regions, v.digest, v.min_severity) == (["84", "93"], "weekly", "high")
    with pytest.raises(users_mod.UserError, match="région"):
        users_mod.update_user(engine, admin, agent.id, regions="")
    with pytest.raises(users_mod.UserError, match="code\\(s\\) région inconnu"):
        users_mod.update_user(engine, admin, agent.id, regions="99")
    with pytest.raises(users_mod.UserError, match="propres droits"):
        users_mod.update_user(engine, admin, admin.id, role="agent", regions="84")
    with pytest.raises(users_mod.UserError, match="propres droits"):
        users_mod.update_user(engine, admin, admin.id, active=False)
    users_mod.update_user(engine, admin, agent.id, role="manager")
    users_mod.reset_password(engine, admin, agent.id, "nouveau-mot-de-passe")
    user, _ = users_mod.authenticate(engine, agent.email, "nouveau-mot-de-passe")
    assert user is not None and user.role == "manager"

    hist = users_mod.user_history(engine, admin, agent.id)
    assert [(e.kind, e.from_value, e.to_value) for e in hist] == [
        ("regions", "84", "84,93"), ("digest", "daily", "weekly"), ("min_severity", "medium", "high"),
        ("role", "agent", "manager"), ("password", None, None), ("login", None, None)]
    assert {e.actor for e in hist[:-1]} == {admin.email} and hist[0].comment == "Renfort PACA"
    assert all("argon2" not in (e.comment or "") for e in hist)

    # add_user records the creation (CLI actor) and validates its choices
    created = users_mod.add_user(engine, email="nouvelle@dreets.test", name="Nouvelle", role="agent",
                                 regions="52", password="motdepasse-solide")
    assert [e.kind for e in users_mod.user_history(engine, admin, created.id)] == ["created"]
    with pytest.raises(users_mod.UserError, match="fréquence"):
        users_mod.add_user(engine, email="x@dreets.test", name="X", role="national", digest="hourly",
                           password="motdepasse-solide")

    # assignment menus: people who may receive work in a region
    assert {u.email for u in users_mod.assignable_users(engine, manager, "84")} == \
        {agent.email, "agent84b@dreets.test", manager.email, admin.email}
    assert [u.email for u in users_mod.assignable_users(engine, "agent84b@dreets.test", "84")] == \
        ["agent84b@dreets.test"]
    with pytest.raises(AccessDenied):
        users_mod.assignable_users(engine, manager, "93")
    assert _user_events(engine) >= 6


def _user_events(engine):
    with engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(UserEvent)).scalar_one()


def test_only_an_administrator_creates_accounts_from_the_dashboard(sqlite_engine):
    from monitor.vocabulary.errors import AccessDenied
    from monitor.accounts.users import add_user, authenticate, create_user

    add_user(sqlite_engine, email="chef@dreets.fr", name="Admin", role="admin", password="mot-de-passe-admin")
    add_user(sqlite_engine, email="agent@dreets.fr", name="Agent", role="agent", regions="84",
             password="mot-de-passe-agent")
    with pytest.raises(AccessDenied):
        create_user(sqlite_engine, "agent@dreets.fr", email="intrus@dreets.fr", name="Intrus", role="admin",
                    password="mot-de-passe-intrus")
    assert authenticate(sqlite_engine, "intrus@dreets.fr", "mot-de-passe-intrus")[0] is None
    created = create_user(sqlite_engine, "chef@dreets.fr", email="new@dreets.fr", name="Nouvelle", role="manager",
                          regions="93", password="mot-de-passe-neuf")
    assert created.role == "manager" and created.regions == "93"
