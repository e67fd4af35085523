"""``evaluate``: detection quality against labelled panels.

Scoring rules (also in the README):

* an alert *opening* is a true positive when it names the service and the indicator of a
  labelled event and opens between the event's start and two months after its end;
* ``drift`` and ``peer_outlier`` alerts are scored together against ``drift`` and
  ``structural`` labels (a structural label spans the whole panel); ``data_quality`` alerts
  against ``fault`` labels; a label or alert with indicator ``*`` (a missing report) matches
  any indicator of that service; ``rule`` alerts are not scored;
* precision = true-positive openings / openings; recall = labels (event × indicator) matched
  by at least one opening; delay = months from the label's start to its first matching
  opening (median); false alerts are reported per 100 services per month of panel.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from monitor import db
from monitor.periods import parse_periods

GROUPS = {
    "statistique": (("drift", "peer_outlier"), ("drift", "structural")),
    "qualité des données": (("data_quality",), ("fault",)),
}
GRACE_MONTHS = 2


@dataclass
class Score:
    group: str
    openings: int
    true_positives: int
    labels: int
    detected: int
    precision: float
    recall: float
    f1: float
    median_delay: float
    false_per_100_services_month: float
    recall_by_kind: dict[str, float] = field(default_factory=dict)


def _months(series: pd.Series) -> pd.Series:
    return parse_periods(series.astype(str))["month_index"]


def score_alerts(alerts: pd.DataFrame, labels: pd.DataFrame, n_services: int, n_months: int,
                 group: str, categories, kinds) -> Score:
    """``alerts``: service_id, indicator, category, opened_month; ``labels``: fixtures labels."""
    a = alerts[alerts["category"].isin(categories)].reset_index(drop=True)
    lab = labels[labels["kind"].isin(kinds)].reset_index(drop=True).copy()
    lab["start"] = _months(lab["start_period"])
    lab["end"] = _months(lab["end_period"])
    pairs = a.reset_index(names="a").merge(lab.reset_index(names="l"), on="service_id", suffixes=("", "_lab"))
    ind_ok = (pairs["indicator"] == pairs["indicator_lab"]) | (pairs["indicator"] == "*") | (pairs["indicator_lab"] == "*")
    time_ok = (pairs["opened_month"] >= pairs["start"]) & (pairs["opened_month"] <= pairs["end"] + GRACE_MONTHS)
    match = pairs[ind_ok & time_ok]
    tp = match["a"].nunique()
    detected = match.groupby("l")["opened_month"].min()
    delays = detected - lab.loc[detected.index, "start"]
    n_open, n_lab = len(a), len(lab)
    precision = tp / n_open if n_open else float("nan")
    recall = len(detected) / n_lab if n_lab else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    by_kind = {}
    key = "subtype" if "subtype" in lab else "kind"
    for k, g in lab.groupby(key):
        by_kind[str(k)] = float(g.index.isin(detected.index).mean())
    fp = n_open - tp
    return Score(group, n_open, tp, n_lab, len(detected), precision, recall, f1,
                 float(np.median(delays)) if len(delays) else float("nan"),
                 100.0 * fp / max(1, n_services * n_months), by_kind)


def alert_openings(engine) -> pd.DataFrame:
    import sqlalchemy as sa

    from monitor.models import Alert

    with engine.connect() as conn:
        rows = conn.execute(sa.select(Alert.service_id, Alert.indicator, Alert.category,
                                      Alert.opened_month_index)).all()
    return pd.DataFrame(rows, columns=["service_id", "indicator", "category", "opened_month"])


@dataclass
class Evaluation:
    name: str
    n_services: int
    n_months: int
    scores: list[Score]
    detect_seconds: float
    baselines: dict[str, Score] = field(default_factory=dict)


def evaluate_dir(data_dir: Path, name: str, detectors=None, workdir: Path | None = None,
                 baselines: bool = True) -> Evaluation:
    """Ingest the panel once, then run each detector set on its own copy of the database."""
    import shutil

    import sqlalchemy as sa

    from detectors.baselines import BASELINES
    from monitor.datasets import load_dataset
    from monitor.detection import run_detection

    labels = pd.read_csv(Path(data_dir) / "labels.csv", dtype=str)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        base = Path(tmp) / "base.db"
        engine = db.get_engine(f"sqlite:///{base}")
        load_dataset(engine, data_dir)
        with engine.connect() as conn:
            n_services = conn.execute(sa.text("select count(*) from services")).scalar_one()
            span = conn.execute(sa.text("select min(month_index), max(month_index) from observations where period_kind = 'M'")).one()
        engine.dispose()
        n_months = int(span[1] - span[0] + 1)
        cats, kinds = GROUPS["statistique"]

        def run(dets, tag):
            path = Path(tmp) / f"{tag}.db"
            shutil.copyfile(base, path)
            eng = db.get_engine(f"sqlite:///{path}")
            try:
                t0 = time.perf_counter()
                run_detection(eng, detectors=dets)
                return alert_openings(eng), time.perf_counter() - t0
            finally:
                eng.dispose()

        alerts, seconds = run(detectors, "system")
        scores = [score_alerts(alerts, labels, n_services, n_months, g, c, k) for g, (c, k) in GROUPS.items()]
        ev = Evaluation(name, n_services, n_months, scores, seconds)
        if baselines:
            for i, (bname, cls) in enumerate(BASELINES.items()):
                alerts, _ = run([cls()], f"baseline{i}")
                ev.baselines[bname] = score_alerts(alerts, labels, n_services, n_months, bname, cats, kinds)
        db.get_engine.cache_clear()
    return ev


def _pct(x: float) -> str:
    return "  n.d." if x != x else f"{100 * x:5.1f}%"


def _line(s: Score) -> str:
    delay = "n.d." if s.median_delay != s.median_delay else f"{s.median_delay:.1f} mois"
    return (f"{s.group:<36}{s.openings:>8}{s.true_positives:>6}{s.labels:>7}{_pct(s.precision):>11}"
            f"{_pct(s.recall):>9}{s.f1:>8.3f}{delay:>12}{s.false_per_100_services_month:>12.3f}")


def format_evaluation(ev: Evaluation) -> str:
    lines = [f"== {ev.name} : {ev.n_services} services × {ev.n_months} mois, détection {ev.detect_seconds:.1f} s",
             f"{'groupe':<36}{'alertes':>8}{'VP':>6}{'évén.':>7}{'précision':>11}{'rappel':>9}{'F1':>8}"
             f"{'délai méd.':>12}{'FP/100/mois':>12}"]
    for s in ev.scores:
        lines.append(_line(s))
        kinds = ", ".join(f"{k} {_pct(v).strip()}" for k, v in sorted(s.recall_by_kind.items()))
        lines.append(f"{'':<36}rappel par type : {kinds}")
    for s in ev.baselines.values():
        lines.append(_line(s))
    return "\n".join(lines)


def evaluate_cli(seeds: list[int], n_services: int | None, n_months: int | None,
                 echo: Callable[[str], None]) -> None:
    from monitor.datasets import FIXTURES_DIR

    if not seeds:
        echo(format_evaluation(evaluate_dir(FIXTURES_DIR, "fixtures livrées")))
        return
    from fixtures.generate import generate, write_panel

    for seed in seeds:
        kw = {}
        if n_services:
            kw["n_services"] = n_services
        if n_months:
            kw["n_months"] = n_months
        with tempfile.TemporaryDirectory() as tmp:
            panel = generate(seed=seed, **kw)
            write_panel(panel, Path(tmp))
            ev = evaluate_dir(Path(tmp), f"graine {seed}" + "".join(f", {k}={v}" for k, v in kw.items()))
        echo(format_evaluation(ev))
