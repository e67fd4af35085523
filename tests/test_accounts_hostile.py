"""Accounts under attack: concurrent guessing, weak passwords, enumeration, hostile addresses."""
from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from monitor.accounts import users as users_mod
from monitor.accounts.passwords import WeakPassword, check_password
from monitor.store.models import DigestOutbox, User, UserEvent
from monitor.vocabulary.emails import is_email

GOOD = "une-phrase-de-passe-solide"


def _events(engine, email: str) -> list[str]:
    with engine.connect() as c:
        return list(c.execute(sa.select(UserEvent.kind).join(User, User.id == UserEvent.user_id)
                              .where(User.email == email).order_by(UserEvent.id)).scalars())


def _user(engine, email: str) -> User:
    with engine.connect() as c:
        return c.execute(sa.select(User).where(User.email == email)).one()


@pytest.mark.timeout(300)
def test_thirty_concurrent_wrong_passwords_all_count_and_lock(engine):
    users_mod.add_user(engine, email="cible@dreets.fr", name="Cible", role="agent", regions="84", password=GOOD)
    barrier = threading.Barrier(30)
    answers: list[tuple] = []

    def guess(i: int) -> None:
        barrier.wait()
        answers.append(users_mod.authenticate(engine, "cible@dreets.fr", f"mauvais-{i}"))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(answers) == 30 and all(u is None for u, _ in answers)
    kinds = _events(engine, "cible@dreets.fr")
    # every attempt is recorded: counted as a failure, or refused because already locked
    assert kinds.count("login_failed") + kinds.count("login_refused") == 30
    assert kinds.count("locked") >= 1
    assert kinds.count("login_failed") >= users_mod.MAX_FAILED_LOGINS
    locked_until = _user(engine, "cible@dreets.fr").locked_until
    assert locked_until is not None
    # the right password is refused until the lock expires, then accepted
    user, message = users_mod.authenticate(engine, "cible@dreets.fr", GOOD)
    assert user is None and message == users_mod.GENERIC_FAILURE
    later = datetime.now(timezone.utc) + users_mod.LOCKOUT + timedelta(minutes=1)
    user, _ = users_mod.authenticate(engine, "cible@dreets.fr", GOOD, now=later)
    assert user is not None
    assert _events(engine, "cible@dreets.fr")[-2:] == ["login_refused", "login"]


@pytest.mark.timeout(300)
def test_right_password_racing_wrong_ones_never_gets_in_once_locked(engine):
    users_mod.add_user(engine, email="course@dreets.fr", name="Course", role="agent", regions="84", password=GOOD)
    barrier = threading.Barrier(12)
    results: dict[int, tuple] = {}

    def attempt(i: int) -> None:
        barrier.wait()
        results[i] = users_mod.authenticate(engine, "course@dreets.fr", GOOD if i == 11 else f"faux-{i}")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 12
    assert users_mod.authenticate(engine, "course@dreets.fr", GOOD)[0] is None      # locked now
    kinds = _events(engine, "course@dreets.fr")
    assert kinds.count("login_failed") + kinds.count("login_refused") >= 11


def test_unknown_disabled_locked_and_wrong_answer_alike_after_the_same_work(sqlite_engine, monkeypatch):
    users_mod.add_user(sqlite_engine, email="reel@dreets.fr", name="Réel", role="agent", regions="84", password=GOOD)
    users_mod.add_user(sqlite_engine, email="parti@dreets.fr", name="Parti", role="agent", regions="84",
                       password=GOOD)
    with sqlite_engine.begin() as c:
        c.execute(sa.update(User).where(User.email == "parti@dreets.fr").values(active=False))
    verified: list[str] = []
    real = users_mod._HASHER

    class Counting:
        def verify(self, hash_, password):
            verified.append(hash_)
            return real.verify(hash_, password)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(users_mod, "_HASHER", Counting())
    answers = {}
    for label, email, pw in [("inconnu", "personne@dreets.fr", GOOD), ("désactivé", "parti@dreets.fr", GOOD),
                             ("faux", "reel@dreets.fr", "mauvais-mot")]:
        verified.clear()
        answers[label] = users_mod.authenticate(sqlite_engine, email, pw)
        assert len(verified) == 1 and verified[0].startswith("$argon2"), label    # one real verification
    for _ in range(users_mod.MAX_FAILED_LOGINS):
        users_mod.authenticate(sqlite_engine, "reel@dreets.fr", "mauvais-mot")
    verified.clear()
    answers["verrouillé"] = users_mod.authenticate(sqlite_engine, "reel@dreets.fr", GOOD)
    assert len(verified) == 1
    assert {u for u, _ in answers.values()} == {None}
    assert len({m for _, m in answers.values()}) == 1        # one message for every case
    assert "verrouillé" in answers["inconnu"][1]
    assert _events(sqlite_engine, "reel@dreets.fr")[-1] == "login_refused"     # the lock still recorded
    assert "locked" in _events(sqlite_engine, "reel@dreets.fr")


@pytest.mark.parametrize("password, role, reason", [
    ("aaaaaaaaaaaa", "agent", "répétitif"),
    (" " * 12, "agent", "espaces"),
    ("\t \u00a0" * 4, "agent", "espaces"),
    ("agent.ara@dreets.fr", "agent", "adresse"),
    ("Agent.Ara!!", "agent", "adresse"),
    ("motdepasse", "agent", "courants"),
    ("Azertyuiop123", "agent", "courants"),
    ("court1!", "agent", "trop court"),
    ("solide-123", "admin", "administrateur"),
    ("x" * 300 + "yzab", "agent", "trop long"),
])
def test_weak_passwords_are_refused_with_a_french_reason(password, role, reason):
    with pytest.raises(WeakPassword, match=reason):
        check_password(password, email="agent.ara@dreets.fr", role=role)


def test_weak_passwords_refused_at_creation_and_reset(sqlite_engine, sqlite_url):
    with pytest.raises(users_mod.UserError, match="administrateur"):
        users_mod.add_user(sqlite_engine, email="chef@dreets.fr", name="Chef", role="admin", password="aaaaaaaa")
    with pytest.raises(users_mod.UserError, match="adresse"):
        users_mod.add_user(sqlite_engine, email="chef@dreets.fr", name="Chef", role="admin",
                           password="chef@dreets.fr")
    admin = users_mod.add_user(sqlite_engine, email="chef@dreets.fr", name="Chef", role="admin",
                               password="une-longue-phrase-admin")
    agent = users_mod.add_user(sqlite_engine, email="agent@dreets.fr", name="Agent", role="agent", regions="84",
                               password=GOOD)
    with pytest.raises(users_mod.UserError, match="espaces"):
        users_mod.reset_password(sqlite_engine, admin, agent.id, " " * 10)
    check_password(GOOD, email="agent@dreets.fr", role="agent")      # a sound passphrase passes
    r = subprocess.run([sys.executable, "-m", "monitor", "--db", sqlite_url, "users", "add", "x@dreets.fr",
                        "--name", "X", "--role", "national", "--password-stdin"],
                       input="        \n", capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "mot de passe refusé" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("address", ["a@evil.fr,b", "a@evil.fr, b@evil.fr", "a@evil.fr;b@x.fr",
                                     "a@evil.fr\nBcc: b@x.fr", "<a@evil.fr>", "a b@evil.fr", "a@evil",
                                     "a@@evil.fr", "a@evil.fr\rBcc: b@x.fr", "\"a,b\"@evil.fr", "a@-evil.fr"])
def test_hostile_addresses_are_refused_wherever_stored_or_mailed(sqlite_engine, address):
    assert not is_email(address)
    with pytest.raises(users_mod.UserError, match="adresse électronique invalide"):
        users_mod.add_user(sqlite_engine, email=address, name="X", role="national", password=GOOD)
    from alerts.notify.smtp import build_message

    row = DigestOutbox(recipient=address, subject="s", body_text="t", body_html="<p>t</p>",
                       idempotency_key="k")
    with pytest.raises(ValueError, match="une seule adresse"):
        build_message(row, "veille@dreets.fr")


def test_plain_addresses_pass():
    for address in ["agent.ara@demo.spsti.fr", "prenom.nom+veille@dreets.gouv.fr", "o'neil@x.fr"]:
        assert is_email(address), address
