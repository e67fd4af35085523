"""Two agents changing the same alert at once cannot overwrite each other (optimistic locking),
with two real database connections (two engines), on SQLite and PostgreSQL."""
from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from world import make_world  # noqa: E402

from alerts.notify import digest  # noqa: E402
from alerts import triage  # noqa: E402
from monitor.vocabulary.errors import ConcurrentModification  # noqa: E402
from monitor.store import db  # noqa: E402
from monitor.store.models import AlertEvent, DigestOutbox  # noqa: E402

MESSAGE = re.compile(r"^Cette alerte a été modifiée par (.+) à \d\d:\d\d ; rechargez-la avant de la modifier\.$")


@pytest.fixture
def engine2(engine):
    """A second engine on the same database: its own pool, its own connections."""
    e2 = sa.create_engine(engine.url.render_as_string(hide_password=False))
    if e2.dialect.name == "sqlite":
        sa.event.listen(e2, "connect", db._sqlite_pragmas)
    yield e2
    e2.dispose()


def _kinds(engine, alert_id):
    with engine.connect() as c:
        return [k for (k,) in c.execute(sa.select(AlertEvent.kind).where(AlertEvent.alert_id == alert_id)
                                        .order_by(AlertEvent.id))]


def test_second_agent_working_from_a_stale_page_gets_a_clear_message(engine, engine2, tmp_path):
    w = make_world(engine, tmp_path)
    alice, bruno = w.users["agent84"], w.users["agent84b"]
    a = w.alerts["s0"]
    seen_by_alice = triage.get_alert(engine, alice, a)
    seen_by_bruno = triage.get_alert(engine2, bruno, a)
    assert seen_by_alice.version == seen_by_bruno.version == 1

    triage.acknowledge(engine, alice, a, seen_by_alice.version, comment="À moi")
    with pytest.raises(ConcurrentModification) as err:
        triage.dismiss(engine2, bruno, a, seen_by_bruno.version, "faux_positif", "Rien à signaler")
    m = MESSAGE.match(str(err.value))
    assert m and m.group(1) == "Alice Agent", str(err.value)
    assert triage.get_alert(engine2, bruno, a).status == "acknowledged"    # Alice's change stands
    # a comment never conflicts; after reloading, Bruno can act
    triage.comment(engine2, bruno, a, "Je vois que c'est pris")
    fresh = triage.get_alert(engine2, bruno, a)
    triage.dismiss(engine2, bruno, a, fresh.version, "faux_positif", "Rien à signaler")
    assert _kinds(engine, a) == ["opened", "acknowledged", "comment", "dismissed"]


def test_a_change_by_detection_also_invalidates_the_page(engine, tmp_path):
    from world import detect, finding

    w = make_world(engine, tmp_path)
    a = w.alerts["s2"]
    page = triage.get_alert(engine, w.users["agent84"], a)
    detect(engine, [finding(w.svc(2), "pdp_cases_per_1000", "2025-04", "high")], ["2025-04"])
    with pytest.raises(ConcurrentModification, match="par la détection automatique"):
        triage.acknowledge(engine, w.users["agent84"], a, page.version)


def test_simultaneous_writes_on_two_connections_exactly_one_wins(engine, engine2, tmp_path, monkeypatch):
    """Both writers read version 1 and pass the version check before either writes: the
    UPDATE ... WHERE version = 1 lets one through; the other gets ConcurrentModification."""
    w = make_world(engine, tmp_path)
    a = w.alerts["s0"]
    alice, manager = w.users["agent84"], w.users["manager84"]
    barrier = threading.Barrier(2, timeout=30)
    original = triage._load_for_change

    def load_then_wait(session, alert_id):
        loaded = original(session, alert_id)
        barrier.wait()                 # both have read the alert at version 1
        return loaded

    races = []
    original_race = triage._conflict_after_race

    def race_detected(engine_, alert_id):
        races.append(alert_id)
        return original_race(engine_, alert_id)

    monkeypatch.setattr(triage, "_load_for_change", load_then_wait)
    monkeypatch.setattr(triage, "_conflict_after_race", race_detected)
    results: dict[str, object] = {}

    def run(name, fn):
        try:
            results[name] = fn()
        except Exception as exc:       # collected and checked below
            results[name] = exc

    threads = [
        threading.Thread(target=run, args=("alice", lambda: triage.acknowledge(engine, alice, a, 1, "À moi"))),
        threading.Thread(target=run, args=("manager", lambda: triage.assign(engine2, manager, a, 1, alice.id))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    monkeypatch.setattr(triage, "_load_for_change", original)

    assert races == [a], "the loser must be stopped by the UPDATE's version guard, not by the early check"
    outcomes = {k: type(v).__name__ for k, v in results.items()}
    assert sorted(outcomes.values()) == ["AlertView", "ConcurrentModification"], results
    winner = next(k for k, v in results.items() if not isinstance(v, Exception))
    loser = results["manager" if winner == "alice" else "alice"]
    m = MESSAGE.match(str(loser))
    assert m and m.group(1) == {"alice": "Alice Agent", "manager": "Marie Responsable"}[winner], str(loser)
    final = triage.get_alert(engine, alice, a)
    assert final.version == 2
    assert _kinds(engine, a) == ["opened", "acknowledged" if winner == "alice" else "assigned"]


def test_two_digest_runs_at_once_queue_each_window_once(engine, engine2, tmp_path):
    w = make_world(engine, tmp_path)
    errors = []

    def run(e):
        try:
            digest.queue_digests(e, base_url="http://tableau.test")
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in (engine, engine2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with engine.connect() as c:
        per_user = c.execute(sa.select(DigestOutbox.user_id, sa.func.count()).group_by(DigestOutbox.user_id)).all()
    subscribed = {w.users[k].id for k in ("agent84", "agent84b", "manager84", "agent93")}
    assert {u for u, _ in per_user} == subscribed and all(n == 1 for _, n in per_user)
