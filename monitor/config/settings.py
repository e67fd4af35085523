"""The configuration file of periodic pulls and of the scheduler (TOML).

The file's path comes from ``--config`` or from ``$SPSTI_MONITOR_CONFIG``. Every error names
the file and the key, in French, and says what is expected. Secrets never live in the file:
a password or a token is read from an environment variable named by a ``*_env`` key.

Schema (see the README, "Periodic pulls and the scheduler", for a complete example)::

    [database]                      # optional: else --db, else $SPSTI_MONITOR_DB
    url = "postgresql+psycopg://spsti@db.example/spsti"
    password_env = "SPSTI_DB_PASSWORD"

    [schedule]
    timezone = "Europe/Paris"
    detect_every_minutes = 30       # or detect_cron = "*/30 * * * *"
    digest_cron = "0 7 * * *"       # digest_enabled = false to switch the digests off
    misfire_grace_seconds = 21600
    retries = 2
    retry_backoff_seconds = 60
    max_workers = 4

    [[sources]]
    name = "depot-sftp"
    kind = "folder"                 # folder | http | sql
    every_minutes = 15              # or every_seconds, or cron = "0 6 * * *"
    ...                             # kind-specific keys, below
"""
from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config.env import DEFAULT_DB_URL

CONFIG_ENV = "SPSTI_MONITOR_CONFIG"
KINDS = ("folder", "http", "sql")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_PATTERNS = ("*.csv", "*.xlsx")
_DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class ConfigError(ValueError):
    """The configuration file is missing or wrong; the message is one French sentence."""


# --------------------------------------------------------------------------- schedules

@dataclass(frozen=True)
class Schedule:
    """When a job runs: every ``seconds`` seconds, or on a crontab expression."""
    seconds: float | None = None
    cron: str | None = None

    def describe_fr(self) -> str:
        if self.cron:
            return f"cron « {self.cron} »"
        s = self.seconds or 0
        if s >= 60 and float(s / 60).is_integer():
            return f"toutes les {int(s // 60)} min"
        return f"toutes les {s:g} s"

    def trigger(self, timezone: str):
        """The APScheduler 3 trigger of this schedule."""
        from apscheduler.triggers.interval import IntervalTrigger

        if self.cron:
            return cron_trigger(self.cron, timezone)
        return IntervalTrigger(seconds=self.seconds, timezone=timezone)


def _cron_day_of_week(field_text: str) -> str:
    """Standard crontab weekdays (0 or 7 = Sunday, 1 = Monday) as names, because APScheduler 3
    numbers them from Monday = 0: "1-5" becomes "mon-fri"."""
    parts = []
    for part in field_text.split(","):
        body, slash, step = part.partition("/")
        body = re.sub(r"\d+", lambda m: _DAY_NAMES[int(m.group())] if int(m.group()) <= 7 else m.group(), body)
        parts.append(body + slash + step)
    return ",".join(parts)


def cron_trigger(expr: str, timezone: str):
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"5 champs attendus (minute heure jour mois jour-de-semaine), {len(fields)} trouvé(s)")
    minute, hour, day, month, dow = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                       day_of_week=_cron_day_of_week(dow), timezone=timezone)


# --------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str
    schedule: Schedule
    enabled: bool = True


@dataclass(frozen=True)
class FolderSourceConfig(SourceConfig):
    path: Path = Path(".")
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    recursive: bool = False
    settle_seconds: float = 30.0


@dataclass(frozen=True)
class HttpSourceConfig(SourceConfig):
    url: str = ""
    timeout: float = 30.0             # seconds, to connect and for each read
    total_timeout: float = 300.0      # seconds, for the whole download
    retries: int = 3                  # further attempts after a failed one
    backoff: float = 2.0              # seconds before the first retry, then doubled
    backoff_max: float = 60.0
    headers: tuple[tuple[str, str], ...] = ()
    headers_env: tuple[tuple[str, str], ...] = ()   # header name -> environment variable
    file_name: str | None = None      # name recorded for the submission (else from the URL)
    max_bytes: int = 200 * 1024 * 1024

    def request_headers(self) -> dict[str, str]:
        out = dict(self.headers)
        for header, var in self.headers_env:
            value = os.environ.get(var)
            if value is None:
                raise ConfigError(f"source « {self.name} » : la variable d'environnement {var} "
                                  f"(en-tête {header}) n'est pas définie")
            out[header] = value
        return out


@dataclass(frozen=True)
class SqlSourceConfig(SourceConfig):
    url: str = ""
    password_env: str | None = None
    query: str = ""
    file_name: str | None = None

    def resolved_url(self) -> str:
        return _with_password(self.url, self.password_env, f"source « {self.name} »")


# --------------------------------------------------------------------------- whole file

@dataclass(frozen=True)
class ScheduleSettings:
    timezone: str = "Europe/Paris"
    detect: Schedule = Schedule(seconds=30 * 60)
    digest: Schedule | None = Schedule(cron="0 7 * * *")
    misfire_grace_seconds: int | None = 6 * 3600
    retries: int = 2
    retry_backoff_seconds: float = 60.0
    retry_backoff_max: float = 900.0
    max_workers: int = 4


@dataclass(frozen=True)
class Settings:
    path: Path
    database_url: str | None = None
    database_password_env: str | None = None
    schedule: ScheduleSettings = ScheduleSettings()
    sources: tuple[SourceConfig, ...] = field(default_factory=tuple)

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"{self.path} : aucune source nommée « {name} » dans la configuration")

    def resolved_database_url(self, explicit: str | None = None) -> str:
        """--db, else $SPSTI_MONITOR_DB, else ``[database] url``, else the default."""
        if explicit:
            return explicit
        if os.environ.get("SPSTI_MONITOR_DB"):
            return os.environ["SPSTI_MONITOR_DB"]
        if self.database_url:
            return _with_password(self.database_url, self.database_password_env,
                                  f"{self.path} : [database]")
        return DEFAULT_DB_URL


def _with_password(url: str, password_env: str | None, where: str) -> str:
    if not password_env:
        return url
    import sqlalchemy as sa

    value = os.environ.get(password_env)
    if value is None:
        raise ConfigError(f"{where} : la variable d'environnement {password_env} (mot de passe) n'est pas définie")
    return sa.make_url(url).set(password=value).render_as_string(hide_password=False)


class _Reader:
    """Typed access to one TOML table, with errors naming the file and the key."""

    def __init__(self, path: Path, table: dict, prefix: str):
        self.path, self.table, self.prefix = path, table, prefix
        self.used: set[str] = set()

    def error(self, key: str, text: str) -> ConfigError:
        return ConfigError(f"{self.path} : clé « {self.prefix}{key} » : {text}")

    def has(self, key: str) -> bool:
        return key in self.table

    def get(self, key: str, kind: str, default: Any = None, required: bool = False):
        self.used.add(key)
        if key not in self.table:
            if required:
                raise ConfigError(f"{self.path} : clé « {self.prefix}{key} » obligatoire absente")
            return default
        value = self.table[key]
        if kind == "str":
            if not isinstance(value, str) or (required and not value.strip()):
                raise self.error(key, "texte non vide attendu")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise self.error(key, "true ou false attendu")
            return value
        if kind in ("number", "positive", "int"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise self.error(key, "nombre attendu")
            if kind == "positive" and value <= 0:
                raise self.error(key, "nombre strictement positif attendu")
            if kind in ("number", "int") and value < 0:
                raise self.error(key, "nombre positif ou nul attendu")
            if kind == "int" and not float(value).is_integer():
                raise self.error(key, "nombre entier attendu")
            return int(value) if kind == "int" else float(value)
        if kind == "strings":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                raise self.error(key, "texte ou liste de textes attendu")
            return tuple(value)
        if kind == "table":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise self.error(key, "table de textes attendue (ex. { Accept = \"text/csv\" })")
            return tuple((str(k), v) for k, v in value.items())
        if kind == "env":
            if not isinstance(value, str) or not _ENV_RE.match(value):
                raise self.error(key, "nom de variable d'environnement attendu (lettres, chiffres, _)")
            return value
        raise AssertionError(kind)

    def check_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ConfigError(f"{self.path} : clé(s) inconnue(s) dans « {self.prefix.rstrip('.') or 'la racine'} » : "
                              f"{', '.join(unknown)}")

    def schedule(self, every_keys: tuple[str, str], cron_key: str, timezone: str,
                 default: Schedule | None, required: bool = False) -> Schedule | None:
        minutes_key, seconds_key = every_keys
        given = [k for k in (minutes_key, seconds_key, cron_key) if k and self.has(k)]
        for k in (minutes_key, seconds_key, cron_key):
            if k:
                self.used.add(k)
        if len(given) > 1:
            raise ConfigError(f"{self.path} : « {self.prefix}{given[0]} » et « {self.prefix}{given[1]} » "
                              f"s'excluent : donnez une seule fréquence")
        if not given:
            if required:
                raise ConfigError(f"{self.path} : fréquence absente pour « {self.prefix.rstrip('.')} » : "
                                  f"donnez {minutes_key} (minutes) ou {cron_key} (expression cron)")
            return default
        key = given[0]
        if key == cron_key:
            expr = self.get(key, "str", required=True)
            try:
                cron_trigger(expr, timezone)
            except Exception as exc:
                raise self.error(key, f"expression cron invalide « {expr} » ({exc})") from None
            return Schedule(cron=" ".join(expr.split()))
        value = self.get(key, "positive")
        return Schedule(seconds=value * 60 if key == minutes_key else value)


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    value = explicit or os.environ.get(CONFIG_ENV)
    if not value:
        raise ConfigError(f"aucun fichier de configuration : indiquez --config FICHIER ou la variable {CONFIG_ENV}")
    return Path(value)


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read and validate the configuration file (``path``, else $SPSTI_MONITOR_CONFIG)."""
    path = config_path(path).expanduser()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path} : fichier de configuration introuvable") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} : c'est un dossier, pas un fichier de configuration") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} : TOML invalide ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path} : fichier de configuration illisible ({exc.strerror})") from None
    path = path.resolve()
    root = _Reader(path, data, "")

    database_url = password_env = None
    database = data.get("database")
    root.used.add("database")
    if database is not None:
        if not isinstance(database, dict):
            raise root.error("database", "table [database] attendue")
        r = _Reader(path, database, "database.")
        database_url = r.get("url", "str", required=True)
        password_env = r.get("password_env", "env")
        r.check_unknown()
        _check_url(path, "database.url", database_url)

    sched = data.get("schedule", {})
    root.used.add("schedule")
    if not isinstance(sched, dict):
        raise root.error("schedule", "table [schedule] attendue")
    r = _Reader(path, sched, "schedule.")
    timezone = r.get("timezone", "str", default="Europe/Paris")
    try:
        from zoneinfo import ZoneInfo
        ZoneInfo(timezone)
    except Exception:
        raise r.error("timezone", f"fuseau horaire inconnu « {timezone} » (ex. Europe/Paris)") from None
    defaults = ScheduleSettings()
    detect = r.schedule(("detect_every_minutes", "detect_every_seconds"), "detect_cron", timezone, defaults.detect)
    digest_enabled = r.get("digest_enabled", "bool", default=True)
    digest = r.schedule(("digest_every_minutes", "digest_every_seconds"), "digest_cron", timezone, defaults.digest)
    grace = r.get("misfire_grace_seconds", "positive", default=defaults.misfire_grace_seconds)
    schedule = ScheduleSettings(
        timezone=timezone, detect=detect, digest=digest if digest_enabled else None,
        misfire_grace_seconds=int(grace),
        retries=r.get("retries", "int", default=defaults.retries),
        retry_backoff_seconds=r.get("retry_backoff_seconds", "number", default=defaults.retry_backoff_seconds),
        retry_backoff_max=r.get("retry_backoff_max", "number", default=defaults.retry_backoff_max),
        max_workers=max(1, r.get("max_workers", "int", default=defaults.max_workers)),
    )
    r.check_unknown()

    raw_sources = data.get("sources", [])
    root.used.add("sources")
    if not isinstance(raw_sources, list) or not all(isinstance(s, dict) for s in raw_sources):
        raise root.error("sources", "liste de tables [[sources]] attendue")
    sources: list[SourceConfig] = []
    for i, raw in enumerate(raw_sources, start=1):
        sources.append(_source(path, raw, i, timezone))
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path} : nom de source en double : {', '.join(dupes)} (chaque source a un nom unique)")
    root.check_unknown()
    return Settings(path=path, database_url=database_url, database_password_env=password_env,
                    schedule=schedule, sources=tuple(sources))


def _check_url(path: Path, key: str, url: str) -> None:
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except Exception:
        raise ConfigError(f"{path} : clé « {key} » : URL SQLAlchemy invalide « {url} »") from None
    if parsed.password and parsed.password != "***":
        raise ConfigError(f"{path} : clé « {key} » : ne mettez pas de mot de passe dans le fichier ; "
                          f"nommez une variable d'environnement avec password_env")


def _source(path: Path, raw: dict, index: int, timezone: str) -> SourceConfig:
    provisional = raw.get("name")
    label = f"sources[{index}]." if not isinstance(provisional, str) else f"sources[{index}] ({provisional})."
    r = _Reader(path, raw, label)
    name = r.get("name", "str", required=True)
    if not _NAME_RE.match(name):
        raise r.error("name", "lettres, chiffres, « . », « - » ou « _ » (100 au plus), sans espace")
    kind = r.get("kind", "str", required=True)
    if kind not in KINDS:
        raise r.error("kind", f"« {kind} » inconnu : folder, http ou sql")
    schedule = r.schedule(("every_minutes", "every_seconds"), "cron", timezone, None, required=True)
    common = dict(name=name, kind=kind, schedule=schedule, enabled=r.get("enabled", "bool", default=True))
    if kind == "folder":
        folder = Path(r.get("path", "str", required=True)).expanduser()
        if not folder.is_absolute():
            folder = path.parent / folder
        cfg = FolderSourceConfig(**common, path=folder,
                                 patterns=r.get("pattern", "strings", default=DEFAULT_PATTERNS),
                                 recursive=r.get("recursive", "bool", default=False),
                                 settle_seconds=r.get("settle_seconds", "number", default=30.0))
    elif kind == "http":
        url = r.get("url", "str", required=True)
        if not re.match(r"^https?://", url, re.I):
            raise r.error("url", f"adresse http:// ou https:// attendue, pas « {url} »")
        cfg = HttpSourceConfig(**common, url=url,
                               timeout=r.get("timeout", "positive", default=30.0),
                               total_timeout=r.get("total_timeout", "positive", default=300.0),
                               retries=r.get("retries", "int", default=3),
                               backoff=r.get("backoff", "number", default=2.0),
                               backoff_max=r.get("backoff_max", "number", default=60.0),
                               headers=r.get("headers", "table", default=()),
                               headers_env=r.get("headers_env", "table", default=()),
                               file_name=r.get("file_name", "str", default=None),
                               max_bytes=r.get("max_bytes", "int", default=200 * 1024 * 1024))
        for header, var in cfg.headers_env:
            if not _ENV_RE.match(var):
                raise r.error("headers_env", f"« {var} » n'est pas un nom de variable d'environnement")
        for header, _ in cfg.headers:
            if header.lower() in ("authorization", "cookie", "x-api-key"):
                raise r.error("headers", f"l'en-tête {header} est un secret : déclarez-le dans headers_env "
                                         f"(nom de la variable d'environnement qui le contient)")
    else:
        url = r.get("url", "str", required=True)
        _check_url(path, f"{label}url", url)
        query = r.get("query", "str", required=True)
        cfg = SqlSourceConfig(**common, url=url, password_env=r.get("password_env", "env"), query=query,
                              file_name=r.get("file_name", "str", default=None))
    r.check_unknown()
    return cfg
