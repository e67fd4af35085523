"""``make bench``: ingest and detection timings (a benchmark command, not a test).

    python -m monitor.bench [--large] [--pg URL]

Prints the time to ingest the bundled fixture panel and to run ``detect`` over it, and with
``--large`` the same for a generated 18,000 services × 24 months panel (peak memory too).
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from monitor import db
from monitor.datasets import FIXTURES_DIR, indicator_files, load_dataset
from monitor.detection import run_detection


def _rows(files) -> int:
    return sum(sum(1 for _ in open(f, "rb")) - 1 for f in files)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_dir(url: str, data_dir: Path, label: str) -> None:
    engine = db.get_engine(url)
    files = indicator_files(data_dir)
    n = _rows(files)
    t0 = time.perf_counter()
    load_dataset(engine, data_dir)
    t_ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = run_detection(engine)
    t_detect = time.perf_counter() - t0
    print(f"{label}: ingest {n:,} rows in {t_ingest:.2f} s ({n / t_ingest:,.0f} rows/s); "
          f"detect {summary.months} months in {t_detect:.2f} s; "
          f"alerts opened {summary.opened}; peak RSS {_peak_mb():,.0f} MB", flush=True)
    engine.dispose()
    db.get_engine.cache_clear()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--large", action="store_true", help="also 18,000 services × 24 months")
    ap.add_argument("--pg", default=None, help="PostgreSQL URL of an EMPTY database to bench on too")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bench_dir(f"sqlite:///{Path(tmp) / 'bench.db'}", FIXTURES_DIR, "fixture panel (SQLite)")
        if args.pg:
            bench_dir(args.pg, FIXTURES_DIR, "fixture panel (PostgreSQL)")
        if args.large:
            from fixtures.generate import generate, write_panel

            t0 = time.perf_counter()
            panel = generate(seed=7, n_services=18000, n_months=24)
            out = Path(tmp) / "large"
            write_panel(panel, out)
            print(f"generated 18,000 × 24 panel in {time.perf_counter() - t0:.1f} s", flush=True)
            bench_dir(f"sqlite:///{Path(tmp) / 'large.db'}", out, "18,000 services × 24 months (SQLite)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
