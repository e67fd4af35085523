"""Settings read from the environment (one place, documented in the README)."""
from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DB_URL = "sqlite:///spsti-monitor.db"


def database_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get("SPSTI_MONITOR_DB") or DEFAULT_DB_URL


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    user: str | None
    password: str | None
    starttls: bool
    sender: str

    @classmethod
    def from_env(cls) -> "SmtpSettings":
        env = os.environ.get
        return cls(
            host=env("SPSTI_MONITOR_SMTP_HOST", "127.0.0.1"),
            port=int(env("SPSTI_MONITOR_SMTP_PORT", "25")),
            user=env("SPSTI_MONITOR_SMTP_USER") or None,
            password=env("SPSTI_MONITOR_SMTP_PASSWORD") or None,
            starttls=env("SPSTI_MONITOR_SMTP_STARTTLS", "false").lower() in ("1", "true", "yes", "oui"),
            sender=env("SPSTI_MONITOR_SMTP_FROM", "spsti-monitor@localhost"),
        )


def base_url() -> str:
    return os.environ.get("SPSTI_MONITOR_BASE_URL", "http://127.0.0.1:8501").rstrip("/")


def untouched_days() -> int:
    """Days after which an open alert nobody has acted on is flagged to its region's managers."""
    try:
        return max(1, int(os.environ.get("SPSTI_MONITOR_UNTOUCHED_DAYS", "14")))
    except ValueError:
        return 14


def _positive_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, str(default))))
    except ValueError:
        return default


@dataclass(frozen=True)
class SessionSettings:
    """Dashboard sign-ins (``monitor.accounts.sessions``): idle and absolute expiry, the key
    that signs the cookie, and whether the cookie is marked Secure (behind a TLS proxy)."""
    idle_minutes: int
    max_hours: int
    secret: str | None
    secure_cookie: bool

    @classmethod
    def from_env(cls) -> "SessionSettings":
        env = os.environ.get
        return cls(
            idle_minutes=_positive_int("SPSTI_MONITOR_SESSION_IDLE_MINUTES", 120),
            max_hours=_positive_int("SPSTI_MONITOR_SESSION_MAX_HOURS", 12),
            secret=env("SPSTI_MONITOR_SESSION_SECRET") or None,
            secure_cookie=env("SPSTI_MONITOR_COOKIE_SECURE", "false").lower() in ("1", "true", "yes", "oui"),
        )
