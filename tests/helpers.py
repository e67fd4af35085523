"""Small builders for test data: registers and indicator files in the exchange format."""
from __future__ import annotations

import csv
import random
from pathlib import Path

from monitor.vocabulary.siret import luhn_complete

REGISTER_COLUMNS = ["service_id", "name", "region_code", "departments", "workers_followed",
                    "companies", "agrement_end", "agrement_start", "certification_level",
                    "certification_end", "max_workers_per_physician_fte", "cotisation_per_worker"]


def siret(i: int) -> str:
    return luhn_complete(f"{100000000 + i:09d}0001"[:13])


def register_rows(n: int = 12, regions=("84", "93", "11")) -> list[dict]:
    rows = []
    for i in range(n):
        region = regions[i % len(regions)]
        dep = {"84": "69;38", "93": "13;83", "11": "75;92", "52": "44;85"}.get(region, "01")
        workers = 20000 + 7000 * i
        rows.append({"service_id": siret(i), "name": f"Service test {i}", "region_code": region,
                     "departments": dep, "workers_followed": workers, "companies": workers // 12,
                     "agrement_end": "2029-06-30", "agrement_start": "2024-07-01",
                     "certification_level": 2, "certification_end": "2027-12-31",
                     "max_workers_per_physician_fte": "", "cotisation_per_worker": 115.5})
    return rows


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None, sep: str = ",",
              encoding: str = "utf-8") -> Path:
    columns = columns or list(rows[0])
    with open(path, "w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh, delimiter=sep)
        w.writerow(columns)
        for r in rows:
            w.writerow([r.get(c, "") for c in columns])
    return path


def indicator_rows(services: list[dict], months: list[str], seed: int = 1) -> list[dict]:
    """Plausible monthly values of a few indicators with counts behind them."""
    rnd = random.Random(seed)
    rows = []
    for s in services:
        workers = int(s["workers_followed"])
        for m in months:
            den = max(10, workers // 400)
            num = sum(rnd.random() < 0.82 for _ in range(den))
            rows.append({"service_id": s["service_id"], "period": m, "indicator": "vip_init_in_delay_rate",
                         "value": round(num / den, 4), "numerator": num, "denominator": den})
            cases = max(0, int(rnd.gauss(workers * 0.0005, 3)))
            rows.append({"service_id": s["service_id"], "period": m, "indicator": "pdp_cases_per_1000",
                         "value": round(1000 * cases / workers, 4), "numerator": cases, "denominator": workers})
            rows.append({"service_id": s["service_id"], "period": m, "indicator": "workers_followed",
                         "value": workers, "numerator": "", "denominator": ""})
    return rows


INDICATOR_COLUMNS = ["service_id", "period", "indicator", "value", "numerator", "denominator"]
