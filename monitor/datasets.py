"""Build a database from a folder in the fixtures layout (services.csv, indicators_*.csv)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import sqlalchemy as sa

from monitor.ingest import IngestReport, ingest_file
from monitor.register import RegisterReport, load_register
from monitor.schema import init

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def indicator_files(data_dir: Path) -> list[Path]:
    files = sorted(Path(data_dir).glob("indicators_*.csv")) + sorted(Path(data_dir).glob("indicators_*.xlsx"))
    return sorted(files)


def load_dataset(engine: sa.Engine, data_dir: str | Path = FIXTURES_DIR,
                 echo: Callable[[str], None] | None = None) -> tuple[RegisterReport, list[IngestReport]]:
    data_dir = Path(data_dir)
    if not (data_dir / "services.csv").exists():
        raise FileNotFoundError(f"{data_dir} : pas de services.csv (lancez « python -m fixtures.generate »)")
    init(engine)
    reg = load_register(engine, data_dir / "services.csv")
    if echo:
        echo(f"Registre : {reg.inserted} services chargés, {len(reg.rejected)} rejetés")
    reports = []
    for f in indicator_files(data_dir):
        rep = ingest_file(engine, f, source="fixtures")
        reports.append(rep)
        if echo:
            echo("  " + rep.summary_fr())
    return reg, reports
