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


@dataclass(frozen=True)
class InputLimits:
    """Bounds on every input file, checked before it is read (README: « Limites des fichiers »).

    The defaults stay well above legitimate exchange files (the 18,000 services × 24 months
    panel is about 4.8 million rows and 300 MB of CSV); each is set by an environment variable."""
    max_file_mb: int = 1024            # SPSTI_MONITOR_MAX_FILE_MB: size on disk
    max_rows: int = 10_000_000         # SPSTI_MONITOR_MAX_ROWS: lines or spreadsheet rows, header included
    max_columns: int = 100             # SPSTI_MONITOR_MAX_COLUMNS
    max_cell_chars: int = 10_000       # SPSTI_MONITOR_MAX_CELL_CHARS
    max_empty_rows: int = 100_000      # SPSTI_MONITOR_MAX_EMPTY_ROWS: blank lines or rows
    max_uncompressed_mb: int = 512     # SPSTI_MONITOR_MAX_UNCOMPRESSED_MB: an XLSX once unzipped

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024

    @property
    def max_uncompressed_bytes(self) -> int:
        return self.max_uncompressed_mb * 1024 * 1024


_LIMIT_VARS = {"max_file_mb": "SPSTI_MONITOR_MAX_FILE_MB", "max_rows": "SPSTI_MONITOR_MAX_ROWS",
               "max_columns": "SPSTI_MONITOR_MAX_COLUMNS", "max_cell_chars": "SPSTI_MONITOR_MAX_CELL_CHARS",
               "max_empty_rows": "SPSTI_MONITOR_MAX_EMPTY_ROWS",
               "max_uncompressed_mb": "SPSTI_MONITOR_MAX_UNCOMPRESSED_MB"}


def input_limits() -> InputLimits:
    """The limits in force: a variable that is not a positive whole number keeps the default."""
    values = {}
    for field_name, var in _LIMIT_VARS.items():
        text = os.environ.get(var, "").strip().replace("_", "").replace(" ", "")
        if text.isdigit() and int(text) > 0:
            values[field_name] = int(text)
    return InputLimits(**values)
