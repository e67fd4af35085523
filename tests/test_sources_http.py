"""HTTP source against a real server on 127.0.0.1: 500, a hang past the timeout, a body cut
mid-way, a malformed file, then a good one (ETag / 304). Each case is recorded, nothing
stored is lost, the good file is ingested exactly once."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from http_script import ScriptedServer  # noqa: E402
from pull_helpers import csv_bytes, load_services, observations, pulls, submissions  # noqa: E402

from monitor.ingest.indicators import ingest_file  # noqa: E402
from monitor.config.settings import HttpSourceConfig, Schedule  # noqa: E402
from monitor.sources import pull_source  # noqa: E402

MALFORMED = b"\x00\x01\x02 ceci n'est pas un export\x00"


def _cfg(url: str, retries: int = 0, **kw) -> HttpSourceConfig:
    return HttpSourceConfig(name="api", kind="http", schedule=Schedule(seconds=60), url=url, timeout=0.4,
                            total_timeout=5, retries=retries, backoff=0.01, backoff_max=0.05, **kw)


def test_each_fault_recorded_nothing_lost_good_file_ingested_once(engine, tmp_path):
    svcs = load_services(engine, tmp_path)
    earlier = tmp_path / "janvier.csv"
    earlier.write_bytes(csv_bytes(svcs, ["2025-01"], seed=1))
    ingest_file(engine, earlier, source="cli")
    stored = observations(engine)
    good = csv_bytes(svcs, ["2025-02"], seed=2)
    script = [("status", 500), ("hang", 3), ("truncate", good), ("file", MALFORMED, None),
              ("file", good, '"v1"')]
    with ScriptedServer(script) as server:
        cfg = _cfg(server.url)
        results = []
        for _ in range(4):
            t0 = time.monotonic()
            results.append(pull_source(engine, cfg))
            assert time.monotonic() - t0 < 3, "a pull must not wait for a hung server"
            assert observations(engine) == stored, "a failed pull lost or changed stored data"
        assert [r.status for r in results] == ["error"] * 4
        assert "HTTP 500" in results[0].error
        assert "délai" in results[1].error
        assert "tronquée" in results[2].error
        assert "binaire" in results[3].error or "illisible" in results[3].error
        assert [s.status for s in submissions(engine)] == ["ingested", "failed"]   # the malformed file, kept for the steward

        ok = pull_source(engine, cfg)
        assert ok.status == "ok", ok.error
        assert ok.files == 1 and ok.accepted == len(svcs) * 3 and ok.etag == '"v1"'
        again = pull_source(engine, cfg)                              # conditional GET -> 304
        assert again.status == "not_modified" and again.files == 0
        assert server.requests[-1]["headers"].get("If-None-Match") == '"v1"'
        assert server.requests[-1]["headers"].get("If-Modified-Since") == "Mon, 03 Mar 2025 08:00:00 GMT"

    recorded = pulls(engine, "api")
    assert [p.status for p in recorded] == ["error", "error", "error", "error", "ok", "not_modified"]
    assert all(p.finished_at is not None and p.error for p in recorded[:4])
    assert recorded[4].etag == '"v1"' and recorded[4].checksum == ok.checksum and recorded[4].accepted == ok.accepted
    assert recorded[5].etag == '"v1"'                                 # carried forward for the next pull
    good_subs = [s for s in submissions(engine) if s.checksum == ok.checksum]
    assert len(good_subs) == 1 and good_subs[0].status == "ingested" and good_subs[0].source == "api"
    assert good_subs[0].file_name == "indicateurs.csv"
    after = observations(engine)
    assert after[:len(stored)] == stored and len(after) == len(stored) + ok.accepted


def test_retries_with_backoff_reach_the_good_file_in_one_pull(engine, tmp_path):
    svcs = load_services(engine, tmp_path)
    good = csv_bytes(svcs, ["2025-03"], seed=3)
    with ScriptedServer([("status", 503), ("hang", 3), ("truncate", good), ("file", good, None)]) as server:
        r = pull_source(engine, _cfg(server.url, retries=3))
        assert r.status == "ok" and r.attempts == 4 and r.files == 1
        assert len(r.notes) == 3 and "HTTP 503" in r.notes[0] and "tronquée" in r.notes[2]
        # a server ignoring conditional requests: same bytes again are not ingested twice
        r2 = pull_source(engine, _cfg(server.url))
        assert r2.status == "not_modified" and r2.files == 0
        assert any("déjà reçu" in n for n in r2.notes)
    assert len(submissions(engine)) == 1


def test_retries_are_bounded_and_client_errors_not_retried(sqlite_engine, tmp_path):
    engine = sqlite_engine
    with ScriptedServer([("status", 500)]) as server:
        r = pull_source(engine, _cfg(server.url, retries=2))
        assert r.status == "error" and r.attempts == 3 and len(server.requests) == 3
        assert "3 tentative(s)" in r.error
    with ScriptedServer([("status", 404)]) as server:
        r = pull_source(engine, _cfg(server.url, retries=2))
        assert r.status == "error" and r.attempts == 1 and "HTTP 404" in r.error and not r.retryable
    r = pull_source(engine, _cfg("http://127.0.0.1:9/rien.csv", retries=1))     # nothing listens
    assert r.status == "error" and "injoignable" in r.error


def test_secret_headers_come_from_the_environment(sqlite_engine, tmp_path, monkeypatch):
    engine = sqlite_engine
    svcs = load_services(engine, tmp_path)
    monkeypatch.setenv("SPSTI_TEST_TOKEN", "Bearer s3cret")
    with ScriptedServer([("file", csv_bytes(svcs, ["2025-01"]), None)]) as server:
        cfg = _cfg(server.url, headers=(("Accept", "text/csv"),), headers_env=(("Authorization", "SPSTI_TEST_TOKEN"),))
        assert pull_source(engine, cfg).status == "ok"
        assert server.requests[0]["headers"]["Authorization"] == "Bearer s3cret"
        monkeypatch.delenv("SPSTI_TEST_TOKEN")
        r = pull_source(engine, cfg)
        assert r.status == "error" and "SPSTI_TEST_TOKEN" in r.error
