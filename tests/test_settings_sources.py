"""The configuration file: the README's example is valid and documents every key; errors
name the file and the key, in French."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.config import settings as st
from monitor.config.settings import ConfigError, FolderSourceConfig, HttpSourceConfig, SqlSourceConfig, load_settings

ROOT = Path(__file__).resolve().parents[1]


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Periodic pulls and the scheduler")
    end = text.index("\n## ", start + 5)
    return text[start:end]


def _readme_example() -> str:
    m = re.search(r"```toml\n(.*?)```", _readme_section(), re.S)
    assert m, "the README section has a TOML example"
    return m.group(1)


def test_readme_example_is_valid_and_documents_every_key(tmp_path, monkeypatch):
    seen: dict[str, set[str]] = {}
    original = st._Reader.check_unknown

    def spy(self):
        seen.setdefault(self.prefix.split("(")[-1].rstrip(".").rstrip(")") or "root", set()).update(self.used)
        return original(self)

    monkeypatch.setattr(st._Reader, "check_unknown", spy)
    path = tmp_path / "spsti.toml"
    path.write_text(_readme_example(), encoding="utf-8")
    s = load_settings(path)
    assert [(x.name, x.kind) for x in s.sources] == [("depot-sftp", "folder"), ("api-region", "http"), ("entrepot", "sql")]
    assert s.schedule.detect.seconds == 1800 and s.schedule.digest.cron == "0 7 * * *"
    assert s.schedule == st.ScheduleSettings(), "the README says the [schedule] values shown are the defaults"
    http = s.source("api-region")
    assert isinstance(http, HttpSourceConfig) and http.headers_env == (("Authorization", "SPSTI_API_AUTHORIZATION"),)
    defaults = HttpSourceConfig(name="x", kind="http", schedule=st.Schedule(seconds=1))
    assert (http.timeout, http.total_timeout, http.retries, http.backoff, http.backoff_max, http.max_bytes) == \
        (defaults.timeout, defaults.total_timeout, defaults.retries, defaults.backoff, defaults.backoff_max, defaults.max_bytes)
    sql = s.source("entrepot")
    assert isinstance(sql, SqlSourceConfig) and "FROM export_spsti" in sql.query
    section = _readme_section()
    keys = set().union(*seen.values()) - {"database", "schedule", "sources"}
    undocumented = sorted(k for k in keys if not re.search(rf"(^|[\s`(]){re.escape(k)}\b", section, re.M))
    assert not undocumented, f"keys missing from the README: {undocumented}"
    assert "SPSTI_MONITOR_CONFIG" in (ROOT / "README.md").read_text(encoding="utf-8").split("## Configuration")[1]


def test_relative_folder_path_and_environment_secrets(tmp_path, monkeypatch):
    path = tmp_path / "conf" / "spsti.toml"
    path.parent.mkdir()
    path.write_text("""
[database]
url = "postgresql+psycopg://spsti@127.0.0.1/spsti"
password_env = "SPSTI_TEST_DB_PW"

[[sources]]
name = "depot"
kind = "folder"
every_minutes = 5
path = "../depot"
pattern = "*.csv"
""", encoding="utf-8")
    s = load_settings(path)
    folder = s.source("depot")
    assert isinstance(folder, FolderSourceConfig)
    assert folder.path == tmp_path / "conf" / ".." / "depot" and folder.patterns == ("*.csv",)
    assert folder.schedule.seconds == 300 and folder.settle_seconds == 30
    monkeypatch.delenv("SPSTI_MONITOR_DB", raising=False)
    with pytest.raises(ConfigError, match="SPSTI_TEST_DB_PW"):
        s.resolved_database_url()
    monkeypatch.setenv("SPSTI_TEST_DB_PW", "p@ss:w/rd")
    assert s.resolved_database_url() == "postgresql+psycopg://spsti:p%40ss%3Aw%2Frd@127.0.0.1/spsti"
    assert s.resolved_database_url("sqlite:///x.db") == "sqlite:///x.db"                 # --db wins
    monkeypatch.setenv("SPSTI_MONITOR_DB", "sqlite:///env.db")
    assert s.resolved_database_url() == "sqlite:///env.db"                                # then the environment
    monkeypatch.setenv(st.CONFIG_ENV, str(path))
    assert load_settings().path == path.resolve()


def test_crontab_weekdays_are_standard():
    """"1-5" is Monday to Friday, as in crontab (APScheduler 3 alone would read Tuesday to Saturday)."""
    trig = st.cron_trigger("0 7 * * 1-5", "Europe/Paris")
    assert "day_of_week='mon-fri'" in str(trig)
    saturday = datetime(2025, 3, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert trig.get_next_fire_time(None, saturday).strftime("%a %H:%M") == "Mon 07:00"
    assert "day_of_week='sun'" in str(st.cron_trigger("0 7 * * 0", "UTC"))
    assert "day_of_week='sun'" in str(st.cron_trigger("0 7 * * 7", "UTC"))
    assert "day_of_week='mon,wed-fri'" in str(st.cron_trigger("0 7 * * 1,3-5", "UTC"))


BASE = """
[[sources]]
name = "depot"
kind = "folder"
every_minutes = 5
path = "/tmp"
"""


@pytest.mark.parametrize("text, expected", [
    (BASE + "pattterns = '*.csv'\n", "clé(s) inconnue(s) dans « sources[1] (depot) » : pattterns"),
    (BASE.replace('kind = "folder"', 'kind = "ftp"'), "sources[1] (depot).kind » : « ftp » inconnu"),
    (BASE.replace('path = "/tmp"', ""), "clé « sources[1] (depot).path » obligatoire absente"),
    (BASE + 'cron = "0 6 * * *"\n', "« sources[1] (depot).every_minutes » et « sources[1] (depot).cron » s'excluent"),
    (BASE.replace("every_minutes = 5", ""), "fréquence absente pour « sources[1] (depot) »"),
    (BASE.replace("every_minutes = 5", 'cron = "0 25 * * *"'), "sources[1] (depot).cron » : expression cron invalide"),
    (BASE.replace("every_minutes = 5", "every_minutes = -1"), "every_minutes » : nombre strictement positif"),
    (BASE.replace('name = "depot"', 'name = "dépôt sftp"'), "sources[1] (dépôt sftp).name"),
    (BASE + BASE, "nom de source en double : depot"),
    ("[schedule]\ntimezone = 'Mars/Olympus'\n", "schedule.timezone » : fuseau horaire inconnu"),
    ("[schedule]\nretries = 1.5\n", "schedule.retries » : nombre entier attendu"),
    ("[schedule]\ndigest_enabled = 'non'\n", "schedule.digest_enabled » : true ou false attendu"),
    ("[database]\nurl = 'postgresql+psycopg://u:secret@h/db'\n", "ne mettez pas de mot de passe dans le fichier"),
    ("[databse]\nurl = 'sqlite:///x.db'\n", "clé(s) inconnue(s) dans « la racine » : databse"),
    ("[[sources]]\nname = 'api'\nkind = 'http'\nevery_minutes = 5\nurl = 'ftp://x/y.csv'\n", "adresse http:// ou https://"),
    ("[[sources]]\nname = 'api'\nkind = 'http'\nevery_minutes = 5\nurl = 'https://x/y.csv'\n"
     "headers = { Authorization = 'Bearer abc' }\n", "déclarez-le dans headers_env"),
    ("[[sources]]\nname = 'dwh'\nkind = 'sql'\nevery_minutes = 5\nurl = 'sqlite:///x.db'\n", "sources[1] (dwh).query » obligatoire"),
    ("sources = 3\n", "liste de tables [[sources]] attendue"),
    ("[schedule\n", "TOML invalide"),
])
def test_errors_name_the_file_and_the_key(tmp_path, text, expected):
    path = tmp_path / "spsti.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file_and_missing_setting(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="introuvable"):
        load_settings(tmp_path / "absent.toml")
    monkeypatch.delenv(st.CONFIG_ENV, raising=False)
    with pytest.raises(ConfigError, match="--config FICHIER ou la variable SPSTI_MONITOR_CONFIG"):
        load_settings()
