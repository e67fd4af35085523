"""Data steward's view: last period and source per service, missing months, quarantined rows
with reasons, per-source status; scoped by region."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from helpers import INDICATOR_COLUMNS, indicator_rows, siret, write_csv  # noqa: E402
from pull_helpers import load_services, write_config  # noqa: E402

from monitor.readmodels import steward  # noqa: E402
from monitor.ingest.indicators import ingest_file  # noqa: E402
from monitor.config.settings import load_settings  # noqa: E402
from monitor.sources import pull_source  # noqa: E402

MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04"]


def _setup(engine, tmp_path):
    svcs = load_services(engine, tmp_path, n=6)      # regions 84, 93, 11, 84, 93, 11
    ids = [s["service_id"] for s in svcs]
    rows = [r for r in indicator_rows(svcs, MONTHS, seed=7)
            if not (r["service_id"] == ids[1] and r["period"] == "2025-03")          # a missing month
            and not (r["service_id"] == ids[2] and r["period"] < "2025-03")          # reports from March on
            and r["service_id"] != ids[3]                                            # never reports
            and not (r["service_id"] == ids[4] and r["period"] == "2025-04")]        # April comes by API
    rows.append({"service_id": ids[0], "period": "2025-04", "indicator": "reprise_within_8d_rate",
                 "value": "84", "numerator": "", "denominator": ""})                 # a percentage
    rows.append({"service_id": siret(99), "period": "2025-04", "indicator": "physician_fte",
                 "value": "3", "numerator": "", "denominator": ""})                  # unknown SIRET
    drop = tmp_path / "depot"
    drop.mkdir()
    write_csv(drop / "envoi.csv", rows, INDICATOR_COLUMNS)
    t = time.time() - 60
    os.utime(drop / "envoi.csv", (t, t))
    config = write_config(tmp_path / "spsti.toml", f"""
[[sources]]
name = "depot"
kind = "folder"
every_minutes = 15
path = "{drop.as_posix()}"
settle_seconds = 0

[[sources]]
name = "api"
kind = "http"
cron = "0 6 * * *"
url = "http://127.0.0.1:9/indicateurs.csv"
""")
    settings = load_settings(config)
    assert pull_source(engine, settings.source("depot")).status == "ok"
    april = [r for r in indicator_rows(svcs, ["2025-04"], seed=8) if r["service_id"] == ids[4]]
    write_csv(tmp_path / "avril.csv", april, INDICATOR_COLUMNS)
    ingest_file(engine, tmp_path / "avril.csv", source="api")
    return ids, settings


def test_reception_quarantine_and_sources(engine, tmp_path):
    ids, settings = _setup(engine, tmp_path)
    rec = steward.services_reception(engine, months=4).set_index("service_id")
    assert list(steward.services_reception(engine).columns) == steward.RECEPTION_COLUMNS
    assert rec.loc[ids[0], "last_period"] == "2025-04" and rec.loc[ids[0], "last_source"] == "depot"
    assert rec.loc[ids[0], "last_file"] == "envoi.csv" and rec.loc[ids[0], "status"] == "à jour"
    assert rec.loc[ids[1], "missing_periods"] == ["2025-03"] and rec.loc[ids[1], "status"] == "incomplet"
    assert rec.loc[ids[2], "expected_months"] == 2 and rec.loc[ids[2], "missing_count"] == 0
    assert rec.loc[ids[3], "status"] == "jamais reçu" and rec.loc[ids[3], "missing_count"] == 4
    assert rec.loc[ids[3], "last_period"] is None or rec.loc[ids[3], "last_period"] != rec.loc[ids[3], "last_period"]
    assert rec.loc[ids[4], "last_source"] == "api" and rec.loc[ids[4], "missing_count"] == 0
    assert rec.index[0] == ids[3]                                   # most missing first
    # as of February, in a two-month window
    feb = steward.services_reception(engine, months=2, as_of="2025-02").set_index("service_id")
    assert feb.loc[ids[1], "missing_count"] == 0 and feb.loc[ids[2], "status"] == "jamais reçu"

    scoped = steward.services_reception(engine, regions=["84"])
    assert sorted(scoped["service_id"]) == sorted([ids[0], ids[3]])
    assert steward.services_reception(engine, regions=[]).empty

    q = steward.quarantine_rows(engine)
    assert list(q.columns) == steward.QUARANTINE_COLUMNS
    assert sorted(q["reason_code"]) == ["probable_percent", "unknown_service"]
    pct = q[q["reason_code"] == "probable_percent"].iloc[0]
    assert "pourcentage" in pct["reason"] and pct["source"] == "depot" and pct["region_code"] == "84"
    assert "84" in pct["raw"] and pct["file_name"] == "envoi.csv"
    assert list(steward.quarantine_rows(engine, regions=["84"])["reason_code"]) == ["probable_percent"]
    assert steward.quarantine_rows(engine, regions=["93"]).empty    # an unknown SIRET belongs to no region
    summary = steward.quarantine_summary(engine)
    assert dict(zip(summary["reason_code"], summary["rows"])) == {"probable_percent": 1, "unknown_service": 1}

    # a later failed pull of the folder: the last success is still shown, with the error
    broken = settings.source("depot").__class__(**{**settings.source("depot").__dict__,
                                                   "path": tmp_path / "absent"})
    assert pull_source(engine, broken).status == "error"
    src = steward.sources_status(engine, settings).set_index("source")
    assert list(src.reset_index().columns) == steward.SOURCE_COLUMNS
    assert src.loc["depot", "last_status"] == "error" and src.loc["depot", "pulls"] == 2
    assert src.loc["depot", "last_success_at"] is not None and src.loc["depot", "last_success_files"] == 1
    assert "introuvable" in src.loc["depot", "last_error"]
    assert src.loc["api", "pulls"] == 0 and src.loc["api", "configured"] and src.loc["api", "schedule"] == "cron « 0 6 * * * »"
    assert src.loc["depot", "schedule"] == "toutes les 15 min"

    subs = steward.submissions(engine)
    assert list(subs["source"]) == ["api", "depot"]
    assert list(steward.submissions(engine, regions=["84"])["source"]) == ["depot"]
    assert list(steward.submissions(engine, source="api")["file_name"]) == ["avril.csv"]


def test_empty_database(engine):
    assert steward.services_reception(engine).empty
    assert steward.quarantine_rows(engine).empty
    assert steward.sources_status(engine).empty
    assert steward.submissions(engine).empty
