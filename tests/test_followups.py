"""Follow-ups (suites): kinds with their legal references, owners, due dates, statuses, export."""
from __future__ import annotations

import csv
import io
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from world import FIRST, detect, finding, make_world  # noqa: E402

from alerts import followups, triage  # noqa: E402
from monitor.vocabulary.errors import AccessDenied, ConcurrentModification, InvalidAction  # noqa: E402
from alerts.followups import KINDS  # noqa: E402
from monitor.store.models import AlertEvent, FollowUpEvent  # noqa: E402

TODAY = date(2026, 1, 15)


def test_kinds_carry_their_legal_reference_and_no_suspension():
    assert set(KINDS) == {"demande_explications", "controle_sur_pieces", "controle_sur_place",
                          "lettre_observations", "mise_en_conformite", "injonction",
                          "agrement_duree_reduite", "fin_agrement"}
    assert KINDS["mise_en_conformite"].legal_reference == "D4622-51" and KINDS["mise_en_conformite"].max_months == 6
    assert KINDS["injonction"].legal_reference == "L4622-9-2"
    assert KINDS["agrement_duree_reduite"].legal_reference == KINDS["fin_agrement"].legal_reference == "D4622-51"
    assert all(k.legal_reference for k in KINDS.values())
    text = " ".join(f"{k.code} {k.label}" for k in KINDS.values()).lower()
    assert "suspension" not in text and "suspen" not in text


def test_create_on_several_alerts_of_one_service_sets_them_under_follow_up(engine, tmp_path):
    w = make_world(engine, tmp_path)
    manager, agent = w.users["manager84"], w.users["agent84"]
    detect(engine, [finding(w.svc(0), "pdp_cases_per_1000", FIRST, "medium")], [FIRST])
    with engine.connect() as c:
        second = c.execute(sa.select(sa.func.max(AlertEvent.alert_id))).scalar_one()
    a = w.alerts["s0"]
    triage.acknowledge(engine, agent, a, 1)

    with pytest.raises(InvalidAction, match="un seul service"):
        followups.create_follow_up(engine, manager, [a, w.alerts["s2"]], "controle_sur_place", agent.id,
                                   TODAY + timedelta(days=10), today=TODAY)
    with pytest.raises(InvalidAction, match="Type de suite inconnu : suspension"):
        followups.create_follow_up(engine, manager, [a], "suspension", agent.id, TODAY, today=TODAY)
    with pytest.raises(InvalidAction, match="déjà passée"):
        followups.create_follow_up(engine, manager, [a], "controle_sur_place", agent.id,
                                   TODAY - timedelta(days=1), today=TODAY)
    with pytest.raises(AccessDenied, match="n'a pas la région"):
        followups.create_follow_up(engine, manager, [a], "controle_sur_place", w.users["agent93"].id,
                                   TODAY + timedelta(days=10), today=TODAY)

    fu = followups.create_follow_up(engine, manager, [a, second], "controle_sur_place", agent.id,
                                    TODAY + timedelta(days=45), "Visite avec le MIT", today=TODAY)
    assert (fu.kind_label, fu.legal_reference, fu.owner_name, fu.status, fu.status_label) == \
        ("Contrôle sur place", KINDS["controle_sur_place"].legal_reference, "Alice Agent", "a_faire", "À faire")
    assert fu.alert_ids == sorted([a, second]) and fu.created_by == manager.email
    for alert_id in (a, second):
        v = triage.get_alert(engine, agent, alert_id)
        assert v.status == "follow_up" and v.follow_up_ids == [fu.id]
    with engine.connect() as c:
        ev = c.execute(sa.select(AlertEvent).where(AlertEvent.alert_id == a).order_by(AlertEvent.id)).all()[-1]
    assert (ev.kind, ev.from_status, ev.to_status, ev.actor) == ("follow_up", "acknowledged", "follow_up", manager.email)
    assert ev.details == {"follow_up_id": fu.id, "kind": "Contrôle sur place"}

    # a second follow-up on an alert already under follow-up is linked, status unchanged
    fu2 = followups.create_follow_up(engine, manager, [a], "lettre_observations", agent.id,
                                     TODAY + timedelta(days=60), today=TODAY)
    assert triage.get_alert(engine, agent, a).follow_up_ids == [fu.id, fu2.id]
    # cannot dismiss an alert while a follow-up is running
    v = triage.get_alert(engine, agent, a)
    with pytest.raises(InvalidAction, match="suite en cours"):
        triage.dismiss(engine, agent, a, v.version, "faux_positif", "rien")
    # dismissed alerts cannot carry a follow-up
    triage.dismiss(engine, agent, w.alerts["s2"], 1, "faux_positif", "Saisonnier")
    with pytest.raises(InvalidAction, match="classée"):
        followups.create_follow_up(engine, manager, [w.alerts["s2"]], "demande_explications", agent.id,
                                   TODAY + timedelta(days=5), today=TODAY)


def test_compliance_request_deadline_is_at_most_six_months(engine, tmp_path):
    w = make_world(engine, tmp_path)
    m, agent = w.users["manager84"], w.users["agent84"]
    start = date(2026, 8, 31)
    with pytest.raises(InvalidAction, match=r"ne peut dépasser 6 mois \(art\. D4622-51.*28/02/2027"):
        followups.create_follow_up(engine, m, [w.alerts["s0"]], "mise_en_conformite", agent.id,
                                   date(2027, 3, 1), today=start)
    fu = followups.create_follow_up(engine, m, [w.alerts["s0"]], "mise_en_conformite", agent.id,
                                    date(2027, 2, 28), today=start)
    assert fu.legal_reference == "D4622-51"
    # other kinds have no such ceiling
    followups.create_follow_up(engine, m, [w.alerts["s2"]], "controle_sur_pieces", agent.id,
                               date(2027, 12, 31), today=start)


def test_update_status_owner_due_notes_each_audited_and_overdue_first(engine, tmp_path):
    w = make_world(engine, tmp_path)
    m, agent, other = w.users["manager84"], w.users["agent84"], w.users["agent84b"]
    late = followups.create_follow_up(engine, m, [w.alerts["s0"]], "demande_explications", agent.id,
                                      TODAY + timedelta(days=5), today=TODAY)
    soon = followups.create_follow_up(engine, m, [w.alerts["s2"]], "lettre_observations", agent.id,
                                      TODAY + timedelta(days=20), today=TODAY)
    later = followups.create_follow_up(engine, m, [w.alerts["s4"]], "controle_sur_pieces", agent.id,
                                       TODAY + timedelta(days=90), today=TODAY)
    day = TODAY + timedelta(days=10)
    listed = followups.list_follow_ups(engine, agent, today=day)
    assert [f.id for f in listed] == [late.id, soon.id, later.id]
    assert [f.overdue for f in listed] == [True, False, False] and listed[0].days_overdue == 5
    # push the late one's due date: it is no longer overdue and sorts by date
    f = followups.update_follow_up(engine, m, late.id, late.version, due_date=day + timedelta(days=30),
                                   owner_id=other.id, comment="Relance envoyée", today=day)
    assert f.owner_name == "Bruno Agent" and f.version == late.version + 1
    assert [x.id for x in followups.list_follow_ups(engine, agent, today=day)] == [soon.id, f.id, later.id]
    assert [x.id for x in followups.list_follow_ups(engine, agent, overdue_only=True,
                                                    today=TODAY + timedelta(days=25))] == [soon.id]
    f = followups.update_follow_up(engine, other, f.id, f.version, status="en_cours", notes="Réponse partielle")
    with pytest.raises(InvalidAction, match="motif de l'abandon"):
        followups.update_follow_up(engine, other, f.id, f.version, status="abandonnee")
    with pytest.raises(InvalidAction, match="Aucune modification"):
        followups.update_follow_up(engine, other, f.id, f.version, status="en_cours")
    f = followups.update_follow_up(engine, other, f.id, f.version, status="terminee", comment="Régularisé")
    assert f.status == "terminee" and f.closed_at is not None and not f.overdue
    assert f.id not in [x.id for x in followups.list_follow_ups(engine, agent)]
    assert f.id in [x.id for x in followups.list_follow_ups(engine, agent, statuses=None)]

    events = followups.follow_up_history(engine, w.users["national"], f.id)
    assert [(e.kind, e.from_value, e.to_value) for e in events][1:] == [
        ("owner", agent.email, other.email),
        ("due_date", (TODAY + timedelta(days=5)).isoformat(), (day + timedelta(days=30)).isoformat()),
        ("status", "À faire", "En cours"), ("notes", None, "Réponse partielle"),
        ("status", "En cours", "Terminée")]
    assert events[0].kind == "created" and events[1].comment == "Relance envoyée"
    assert {e.actor for e in events[3:]} == {other.email}

    # optimistic locking on follow-ups too
    with pytest.raises(ConcurrentModification, match="Cette suite a été modifiée par Bruno Agent"):
        followups.update_follow_up(engine, m, f.id, f.version - 1, notes="écrasement")


def test_export_csv_cells_cannot_start_a_formula(engine, tmp_path):
    w = make_world(engine, tmp_path)
    m, agent = w.users["manager84"], w.users["agent84"]
    followups.create_follow_up(engine, m, [w.alerts["s0"]], "injonction", agent.id, TODAY + timedelta(days=5),
                               '=HYPERLINK("http://x";"clic")', today=TODAY)
    followups.create_follow_up(engine, m, [w.alerts["s2"]], "controle_sur_place", agent.id,
                               TODAY + timedelta(days=9), "+33 4 72 00 00 00\n@SUM(A1)", today=TODAY)
    followups.create_follow_up(engine, w.users["agent93"], [w.alerts["s1"]], "controle_sur_place",
                               w.users["agent93"].id, TODAY + timedelta(days=9), "-2+3", today=TODAY)
    text = followups.export_follow_ups_csv(engine, agent)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 and {r["region_code"] for r in rows} == {"84"}      # scoped
    assert rows[0]["legal_reference"] == "L4622-9-2" and rows[0]["kind_label"].startswith("Injonction")
    for r in rows:
        for value in r.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    assert rows[0]["notes"] == '\'=HYPERLINK("http://x";"clic")'
    assert rows[1]["notes"].startswith("'+33")
    everything = list(csv.DictReader(io.StringIO(followups.export_follow_ups_csv(engine, w.users["national"]))))
    assert len(everything) == 3 and any(r["notes"] == "'-2+3" for r in everything)
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(FollowUpEvent)).scalar_one() == 3
