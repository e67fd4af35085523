"""Send queued digests (the outbox) over SMTP, with bounded retries; never a row twice.

A row is claimed before sending (``pending``/``failed`` → ``sending`` by a conditional UPDATE,
so two concurrent senders cannot both take it), then marked ``sent`` or ``failed`` with its
attempt count and last error. ``failed`` rows are tried again on the next run, so an SMTP
outage loses nothing. A row left in ``sending`` (the process died between the SMTP server's
acceptance and the database update) is not retried automatically, since it may have been
delivered: it is reported, for a person to check.

Settings: ``SPSTI_MONITOR_SMTP_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD``, ``_STARTTLS``,
``_FROM`` (:class:`monitor.config.SmtpSettings`).
"""
from __future__ import annotations

import smtplib
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Callable

import sqlalchemy as sa

from monitor.store import db
from monitor.config.env import SmtpSettings
from monitor.store.models import DigestOutbox
from monitor.vocabulary.emails import is_email

RETRYABLE = ("pending", "failed")
MAX_TOTAL_ATTEMPTS = 50           # beyond this a failed row waits for a person


@dataclass
class SendReport:
    sent: list[tuple[int, str]] = field(default_factory=list)          # (outbox id, recipient)
    failed: list[tuple[int, str, str]] = field(default_factory=list)   # (outbox id, recipient, error)
    not_attempted: int = 0        # left pending because the server was unreachable
    interrupted: int = 0          # rows stuck in "sending" from an earlier crash
    given_up: int = 0             # failed rows past MAX_TOTAL_ATTEMPTS

    def summary_fr(self) -> str:
        text = f"{len(self.sent)} récapitulatif(s) envoyé(s)"
        if self.failed or self.not_attempted:
            text += (f", {len(self.failed) + self.not_attempted} en attente "
                     f"(nouvel essai au prochain passage)")
        if self.interrupted:
            text += f", {self.interrupted} envoi(s) interrompu(s) à vérifier"
        if self.given_up:
            text += f", {self.given_up} abandonné(s) après {MAX_TOTAL_ATTEMPTS} essais"
        return text


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip("> ") or "localhost"


def build_message(row: DigestOutbox, sender: str) -> EmailMessage:
    """The e-mail of an outbox row: plain text and HTML alternatives, a stable Message-ID."""
    if not is_email(row.recipient or ""):      # "a@x.fr,b@y.fr" in a To: header would mail both
        raise ValueError(f"adresse du destinataire invalide : {row.recipient!r} (une seule adresse attendue)")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row.recipient
    msg["Subject"] = row.subject
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = f"<{row.idempotency_key}@{_domain(sender)}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["Content-Language"] = "fr"
    msg["X-SPSTI-Digest"] = row.idempotency_key
    msg.set_content(row.body_text, subtype="plain", charset="utf-8")
    msg.add_alternative(row.body_html, subtype="html", charset="utf-8")
    return msg


class _Mailer:
    """One SMTP connection reused for a run, reopened after an error."""

    def __init__(self, settings: SmtpSettings, timeout: float):
        self.settings, self.timeout, self.smtp = settings, timeout, None

    def send(self, msg: EmailMessage) -> None:
        if self.smtp is None:
            st = self.settings
            smtp = smtplib.SMTP(st.host, st.port, timeout=self.timeout)
            try:
                smtp.ehlo()
                if st.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if st.user:
                    smtp.login(st.user, st.password or "")
            except BaseException:
                smtp.close()
                raise
            self.smtp = smtp
        self.smtp.send_message(msg)

    def reset(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except Exception:
                self.smtp.close()
        self.smtp = None


def _describe(exc: Exception, settings: SmtpSettings) -> tuple[str, bool]:
    """(French message, whether the whole server is unreachable)."""
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"destinataire refusé par le serveur SMTP {where} : {exc.recipients}", False
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"authentification refusée par le serveur SMTP {where} ({exc.smtp_code})", True
    if isinstance(exc, (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected)):
        return f"serveur SMTP {where} injoignable ({exc})", True
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"le serveur SMTP {where} a répondu {exc.smtp_code} {text}", False
    if isinstance(exc, smtplib.SMTPException):
        return f"erreur SMTP avec {where} : {exc}", True
    return f"serveur SMTP {where} injoignable ({exc})", True


def _claim(engine: sa.Engine, row_id: int) -> bool:
    with engine.begin() as conn:
        res = conn.execute(sa.update(DigestOutbox)
                           .where(DigestOutbox.id == row_id, DigestOutbox.status.in_(RETRYABLE))
                           .values(status="sending"))
        return res.rowcount == 1


def _finish(engine: sa.Engine, row_id: int, attempts: int, error: str | None) -> None:
    values = dict(status="sent", sent_at=datetime.now(timezone.utc), last_error=None) if error is None \
        else dict(status="failed", last_error=error[:2000])
    with engine.begin() as conn:
        conn.execute(sa.update(DigestOutbox)
                     .where(DigestOutbox.id == row_id, DigestOutbox.status == "sending")
                     .values(attempts=DigestOutbox.attempts + attempts, **values))


def send_pending(engine: sa.Engine, settings: SmtpSettings | None = None, *, max_attempts: int = 3,
                 backoff: float = 1.0, timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> SendReport:
    """Send every pending or failed outbox row, oldest first.

    Each row gets up to ``max_attempts`` tries, ``backoff`` × 2^n seconds apart. When the
    server cannot be reached at all, the run stops and the remaining rows wait for the next one.
    """
    settings = settings or SmtpSettings.from_env()
    report = SendReport()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(DigestOutbox.id, DigestOutbox.attempts)
                            .where(DigestOutbox.status.in_(RETRYABLE)).order_by(DigestOutbox.id)).all()
        report.interrupted = conn.execute(sa.select(sa.func.count()).select_from(DigestOutbox)
                                          .where(DigestOutbox.status == "sending")).scalar_one()
    todo = [r.id for r in rows if r.attempts < MAX_TOTAL_ATTEMPTS]
    report.given_up = len(rows) - len(todo)
    mailer = _Mailer(settings, timeout)
    try:
        for n, row_id in enumerate(todo):
            if not _claim(engine, row_id):
                continue                   # another sender took it
            attempts, error, unreachable = 0, None, False
            try:
                with db.session_scope(engine) as s:
                    row = s.get(DigestOutbox, row_id)
                    msg = build_message(row, settings.sender)
                    recipient = row.recipient
            except Exception as exc:           # an unreadable row must not stay "sending"
                _finish(engine, row_id, 0, f"message impossible à construire : {exc}")
                report.failed.append((row_id, "?", str(exc)))
                continue
            while attempts < max_attempts:
                attempts += 1
                try:
                    mailer.send(msg)
                    error = None
                    break
                except (smtplib.SMTPException, OSError) as exc:
                    error, unreachable = _describe(exc, settings)
                    mailer.reset()
                    if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500 \
                            and not unreachable:
                        break                  # a permanent refusal: retrying now will not help
                    if attempts < max_attempts:
                        sleep(backoff * 2 ** (attempts - 1))
            _finish(engine, row_id, attempts, error)
            if error is None:
                report.sent.append((row_id, recipient))
            else:
                report.failed.append((row_id, recipient, error))
                if unreachable:
                    report.not_attempted = len(todo) - n - 1
                    break
    finally:
        mailer.reset()
    return report


def outbox_pending(engine: sa.Engine) -> list[DigestOutbox]:
    """Rows waiting to be sent (pending or failed), for ``digest send --dry-run``."""
    with db.session_scope(engine) as s:
        rows = list(s.scalars(sa.select(DigestOutbox).where(DigestOutbox.status.in_(RETRYABLE))
                              .order_by(DigestOutbox.id)))
        s.expunge_all()
        return rows
