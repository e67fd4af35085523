"""The dashboard under streamlit.testing: sign-in, region scoping of the alert queue."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import INDICATOR_COLUMNS, REGISTER_COLUMNS, indicator_rows, register_rows, write_csv  # noqa: E402

from monitor.detection import run_detection  # noqa: E402
from monitor.ingest import ingest_file  # noqa: E402
from monitor.register import load_register  # noqa: E402
from monitor.users import add_user  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PASSWORD = "mot-de-passe-test"


@pytest.fixture
def dashboard_db(sqlite_engine, sqlite_url, tmp_path, monkeypatch):
    svcs = register_rows(18, regions=("84", "93"))
    rows = indicator_rows(svcs, [f"2025-{m:02d}" for m in range(1, 7)])
    dropped = {svcs[0]["service_id"], svcs[1]["service_id"]}   # one service of each region stops reporting
    rows = [r for r in rows if not (r["service_id"] in dropped and r["period"] == "2025-06")]
    write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS)
    write_csv(tmp_path / "ind.csv", rows, INDICATOR_COLUMNS)
    load_register(sqlite_engine, tmp_path / "reg.csv")
    ingest_file(sqlite_engine, tmp_path / "ind.csv")
    run_detection(sqlite_engine)
    add_user(sqlite_engine, email="agent84@test.fr", name="Agent ARA", role="agent", regions="84", password=PASSWORD)
    add_user(sqlite_engine, email="dgt@test.fr", name="DGT", role="national", password=PASSWORD)
    monkeypatch.setenv("SPSTI_MONITOR_DB", sqlite_url)
    return svcs


def _login(email: str, password: str = PASSWORD) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    at.text_input[0].input(email)
    at.text_input[1].input(password)
    at.button[0].click()
    at.run()
    return at


def test_login_required_and_wrong_password(dashboard_db):
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception
    assert at.title[0].value.startswith("Supervision")
    at = _login("agent84@test.fr", "faux")
    assert at.error and "incorrect" in at.error[0].value


def test_agent_sees_only_own_region(dashboard_db):
    svcs = dashboard_db
    at = _login("agent84@test.fr")
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) >= 1
    assert set(table["Région"]) == {"Auvergne-Rhône-Alpes"}
    names_93 = {s["name"] for s in svcs if s["region_code"] == "93"}
    assert not (set(table["Service"]) & names_93)


def test_national_sees_all_regions(dashboard_db):
    at = _login("dgt@test.fr")
    assert not at.exception
    regions = set(at.dataframe[0].value["Région"])
    assert regions == {"Auvergne-Rhône-Alpes", "Provence-Alpes-Côte d'Azur"}
