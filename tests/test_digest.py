"""Digests against a real SMTP server (aiosmtpd on 127.0.0.1): delivery, content, idempotency,
outage and recovery, who gets nothing."""
from __future__ import annotations

import email
import email.policy
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

sys.path.insert(0, str(Path(__file__).parent))
from world import detect, finding, make_world  # noqa: E402

from alerts import triage  # noqa: E402
from alerts.notify.digest import DigestDeliveryError, send_digests  # noqa: E402
from monitor.config.env import SmtpSettings  # noqa: E402
from monitor.store.models import DigestOutbox, User  # noqa: E402

BASE = "https://veille-spsti.dreets.test"
SENDER = "Veille SPSTI <veille-spsti@dreets.test>"


class Collector:
    def __init__(self):
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"

    def to(self, address: str):
        return [m for _, rcpt, m in self.messages if address in rcpt]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real SMTP server on 127.0.0.1 that can be started late (to simulate an outage)."""

    def __init__(self, port: int | None = None, **kw):
        self.port = port or free_port()
        self.handler = Collector()
        self.kw = kw
        self.controller = None

    def start(self):
        self.controller = aiosmtpd_controller.Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                                         **self.kw)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def settings(self, **kw) -> SmtpSettings:
        return SmtpSettings(**{"host": "127.0.0.1", "port": self.port, "user": None, "password": None,
                               "starttls": False, "sender": SENDER, **kw})


@pytest.fixture
def smtp():
    server = Server().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_down():
    server = Server()          # not started: nothing listens on the port
    yield server
    server.stop()


def _send(engine, server, **kw):
    return send_digests(engine, settings=server.settings(), base_url=BASE, backoff=0.01, **kw)


def _outbox(engine):
    with engine.connect() as c:
        return c.execute(sa.select(DigestOutbox.recipient, DigestOutbox.status, DigestOutbox.attempts)
                         .order_by(DigestOutbox.id)).all()


def _plain(msg) -> str:
    return msg.get_body(("plain",)).get_content().replace("\r\n", "\n")


def _html(msg) -> str:
    return msg.get_body(("html",)).get_content().replace("\r\n", "\n")


def test_digest_delivered_grouped_in_french_with_links_and_sent_once(engine, smtp, tmp_path):
    w = make_world(engine, tmp_path)
    alice, bruno, paul = w.users["agent84"], w.users["agent84b"], w.users["agent93"]
    triage.acknowledge(engine, bruno, w.alerts["s0"], 1)                       # Alice hears about it
    triage.acknowledge(engine, alice, w.alerts["s2"], 1)                       # her own: not news to her
    triage.dismiss(engine, bruno, w.alerts["s4"], 1, "faux_positif", "<script>alert(1)</script> & co")

    run = _send(engine, smtp)
    assert (run.prepared, run.sent, run.failed) == (4, 4, 0)
    assert sorted(r for _, rcpt, _ in smtp.handler.messages for r in rcpt) == sorted(
        [alice.email, bruno.email, w.users["manager84"].email, paul.email])    # digest "off": nobody else

    (msg,) = smtp.handler.to(alice.email)
    assert msg["From"] == SENDER and msg["To"] == alice.email
    assert msg["Subject"].startswith("Supervision des SPSTI – récapitulatif quotidien du ")
    assert msg["Subject"].endswith(": 2 alertes dont 2 nouvelles")
    assert msg.get_content_type() == "multipart/alternative"
    text, page = _plain(msg), _html(msg)
    Path(os.environ.get("SPSTI_DIGEST_SAMPLE", tmp_path / "digest.txt")).write_text(text, encoding="utf-8")
    assert text.startswith("Bonjour Alice Agent,")
    assert "AUVERGNE-RHÔNE-ALPES (84)" in text and "PROVENCE" not in text
    assert text.index("Service test 0 — SIRET") < text.index("Service test 2 — SIRET")
    assert "Taux de VIP dans le délai : 61 % en mars 2025 contre 84 % attendu" in text
    assert "prise en charge par Bruno Agent" in text
    assert "prise en charge par Alice Agent" not in text                     # her own action
    assert "Service test 4" not in text                                      # low severity: below her threshold
    assert f"Voir l'alerte : {BASE}/alerte?id={w.alerts['s0']}" in text
    assert f'<a href="{BASE}/alerte?id={w.alerts["s0"]}">' in page
    assert "<h2" in page and "Auvergne-Rhône-Alpes (84)</h2>" in page

    (msg_b,) = smtp.handler.to(bruno.email)      # Bruno follows low severities too; sees Alice's action
    text_b, page_b = _plain(msg_b), _html(msg_b)
    assert "prise en charge par Alice Agent" in text_b and "Service test 4" in text_b
    assert "classée par Bruno" not in text_b                                 # his own dismissal
    (msg_p,) = smtp.handler.to(paul.email)
    assert "PROVENCE-ALPES-CÔTE D'AZUR (93)" in _plain(msg_p) and "Service test 3" not in _plain(msg_p)
    assert "1 alerte dont 1 nouvelle" in msg_p["Subject"]
    assert all(m["Message-ID"].startswith("<user") for _, _, m in smtp.handler.messages)

    # the second run sends nothing
    again = _send(engine, smtp)
    assert (again.prepared, again.sent) == (0, 0)
    assert len(smtp.handler.messages) == 4
    assert [(s, n) for _, s, n in _outbox(engine)] == [("sent", 1)] * 4

    # the next day, only what changed since: a new alert, and Bruno's dismissal with escaped text
    detect(engine, [finding(w.svc(2), "amt_per_1000", "2025-04", "high")], ["2025-04"])
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    third = _send(engine, smtp, now=tomorrow)
    assert sorted(third.recipients) == [alice.email, bruno.email]   # nothing new in 93; manager weekly
    (second_alice,) = smtp.handler.to(alice.email)[1:]
    t = _plain(second_alice)
    assert "1 alerte, dont 1 nouvelle" in t and "Actions en milieu de travail" in t
    assert "Bruno" not in t
    assert len(smtp.handler.to(paul.email)) == 1


def test_html_escapes_user_text(engine, smtp, tmp_path):
    w = make_world(engine, tmp_path)
    triage.dismiss(engine, w.users["agent84b"], w.alerts["s0"], 1, "faux_positif",
                   '<script>alert("x")</script> & <b>gras</b>')
    _send(engine, smtp)
    (msg,) = smtp.handler.to(w.users["agent84"].email)
    page = _html(msg)
    assert "<script>" not in page and "<b>gras</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;gras&lt;/b&gt;" in page
    assert '<script>alert("x")</script> & <b>gras</b>' in _plain(msg)     # plain text as written


def test_smtp_down_loses_nothing_and_the_next_run_delivers_exactly_once(engine, smtp_down, tmp_path):
    w = make_world(engine, tmp_path)
    with pytest.raises(DigestDeliveryError, match="injoignable.*renvoyés au prochain passage") as err:
        _send(engine, smtp_down, max_attempts=3)
    assert (err.value.run.prepared, err.value.run.sent, err.value.run.waiting) == (4, 0, 4)
    rows = _outbox(engine)
    assert [s for _, s, _ in rows] == ["failed", "pending", "pending", "pending"]
    assert rows[0].attempts == 3 and all(r.attempts == 0 for r in rows[1:])
    # still down: attempts keep counting, nothing queued twice
    run = _send(engine, smtp_down, max_attempts=2, fail_on_error=False)
    assert (run.prepared, run.sent) == (0, 0) and _outbox(engine)[0].attempts == 5

    smtp_down.start()                                                        # the server is back
    run = _send(engine, smtp_down)
    assert (run.prepared, run.sent, run.failed) == (0, 4, 0)
    assert sorted(r for _, rcpt, _ in smtp_down.handler.messages for r in rcpt) == sorted(
        w.users[k].email for k in ("agent84", "agent84b", "manager84", "agent93"))
    assert [s for _, s, _ in _outbox(engine)] == ["sent"] * 4
    assert _send(engine, smtp_down).sent == 0
    assert len(smtp_down.handler.messages) == 4


def test_who_gets_nothing_and_dry_run_writes_nothing(engine, smtp, tmp_path):
    w = make_world(engine, tmp_path)
    now = datetime.now(timezone.utc)
    with engine.begin() as c:
        # an account left without regions, a weekly reader who had a digest three days ago,
        # and the national level subscribed to high severities of every region
        c.execute(sa.update(User).where(User.id == w.users["agent84b"].id).values(regions=""))
        c.execute(sa.update(User).where(User.id == w.users["manager84"].id)
                  .values(last_digest_at=now - timedelta(days=3), last_digest_event_id=0))
        c.execute(sa.update(User).where(User.id == w.users["national"].id).values(digest="daily"))
        c.execute(sa.update(User).where(User.id == w.users["agent93"].id).values(active=False))

    dry = send_digests(engine, dry_run=True, base_url=BASE)
    assert dry.dry_run and sorted(dry.recipients) == ["agent84@dreets.test", "dgt@travail.test"]
    assert (dry.no_region, dry.not_due) == (1, 1)
    assert _outbox(engine) == [] and smtp.handler.messages == []
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(User)
                         .where(User.last_digest_at.is_not(None))).scalar_one() == 1   # only the one we set

    run = _send(engine, smtp)
    assert sorted(run.recipients) == ["agent84@dreets.test", "dgt@travail.test"]
    (national,) = smtp.handler.to("dgt@travail.test")
    text = _plain(national)
    assert text.index("AUVERGNE-RHÔNE-ALPES (84)") < text.index("PROVENCE-ALPES-CÔTE D'AZUR (93)")
    assert "Service test 2" not in text                                     # medium, below "high"
    # four days later the weekly reader is due and gets what happened since their cursor
    later = _send(engine, smtp, now=now + timedelta(days=4))
    assert "manager84@dreets.test" in later.recipients
    assert "agent84b@dreets.test" not in {r for _, rcpt, _ in smtp.handler.messages for r in rcpt}


def test_smtp_login_is_used_when_a_user_is_configured(sqlite_engine, tmp_path):
    from aiosmtpd.smtp import AuthResult, LoginPassword

    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"veille", b"s3cret")
        seen.append((mechanism, ok))
        return AuthResult(success=ok)

    server = Server(authenticator=authenticator, auth_require_tls=False).start()
    try:
        make_world(sqlite_engine, tmp_path)
        run = send_digests(sqlite_engine, settings=server.settings(user="veille", password="s3cret"),
                           base_url=BASE, backoff=0.01)
        assert run.sent == 4 and seen and all(ok for _, ok in seen)
        assert len(server.handler.messages) == 4
    finally:
        server.stop()


def test_cli_digest_send(sqlite_url, tmp_path):
    from monitor.store import db

    engine = db.get_engine(sqlite_url)
    from monitor.store import schema

    schema.init(engine)
    make_world(engine, tmp_path)
    server = Server()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPSTI_MONITOR_")}
    env.update(SPSTI_MONITOR_SMTP_HOST="127.0.0.1", SPSTI_MONITOR_SMTP_PORT=str(server.port),
               SPSTI_MONITOR_SMTP_FROM=SENDER, SPSTI_MONITOR_SMTP_STARTTLS="false",
               SPSTI_MONITOR_BASE_URL=BASE + "/")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "monitor", "--db", sqlite_url, "digest", "send", *args],
                              capture_output=True, text=True, env=env, timeout=120)

    r = cli("--dry-run")
    assert r.returncode == 0, r.stderr
    assert "Simulation : 4 récapitulatif(s) à préparer" in r.stdout and "agent84@dreets.test" in r.stdout
    r = cli()                                     # nothing listens: one French sentence, non-zero exit
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("Erreur : 4 récapitulatif(s) non envoyé(s) : serveur SMTP 127.0.0.1:")
    assert len(r.stderr.strip().splitlines()) == 1
    server.start()
    try:
        r = cli()
        assert r.returncode == 0, r.stderr
        assert "0 récapitulatif(s) préparé(s), 4 envoyé(s)" in r.stdout
        r = cli()
        assert r.returncode == 0 and "0 récapitulatif(s) préparé(s), 0 envoyé(s)" in r.stdout
        assert len(server.handler.messages) == 4
        assert f"{BASE}/alerte?id=" in _plain(server.handler.messages[0][2])
    finally:
        server.stop()
