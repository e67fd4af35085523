"""The detector contract, in the spirit of PyOD's ``BaseDetector``.

A detector is configured once (a frozen dataclass, separate from computation) and called
on a :class:`~detectors.panel.Panel` with the months to report on. It returns a findings
DataFrame (``FINDING_COLUMNS``). A finding for month ``m`` may only use data of months
``<= m``: detectors compute causally over the whole panel at once, vectorised across
services, so that a backfill gives exactly what monthly runs would have given.
Detectors never write alerts: monitor.detection turns findings into alerts.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.panel import Panel

FINDING_COLUMNS = ["service_id", "indicator", "month_index", "period_kind", "category", "detector",
                   "detector_version", "score", "severity", "value", "expected", "lower",
                   "upper", "explanation", "evidence", "config", "sustain"]
CATEGORIES = ("drift", "peer_outlier", "rule", "data_quality")

SEVERITIES = ("low", "medium", "high")


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Base configuration; subclasses add their own fields (all with defaults).

    Thresholds derived from the alert budget (detectors.budget) are properties named in
    ``DERIVED``: they follow the budget and the number of tests, and every finding cites them
    with the fields."""

    DERIVED: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update({name: getattr(self, name) for name in self.DERIVED})
        return out


class Detector(ABC):
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    category: ClassVar[str]
    family: ClassVar[str]
    Config: ClassVar[type[DetectorConfig]] = DetectorConfig

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any):
        config = config or self.Config()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        if not isinstance(config, self.Config):
            raise TypeError(f"{self.name}: configuration must be a {self.Config.__name__}")
        self.config = config

    @abstractmethod
    def detect(self, panel: Panel, months: np.ndarray) -> pd.DataFrame:
        """Findings for the given months (each using data up to its own month only)."""

    def exclusions(self, panel: Panel) -> pd.DataFrame:
        """Cells (``service_id``, ``indicator``, ``month_index``; indicator ``*`` for every
        indicator) this detector finds faulty: they are kept out of the statistical detectors
        (:func:`exclude_faulty_cells`). None by default."""
        return pd.DataFrame(columns=["service_id", "indicator", "month_index"])

    def findings(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Complete a detector's rows into the findings schema, citing this configuration."""
        n = len(rows)
        index = pd.RangeIndex(n)
        fixed = {"detector": self.name, "detector_version": self.version, "config": [self.config.to_dict()] * n}
        data = {}
        for col in FINDING_COLUMNS:          # one frame built once (not a column added at a time)
            if col in fixed:
                data[col] = fixed[col]
            elif col in rows:
                data[col] = rows[col].reset_index(drop=True)
            elif col == "category":
                data[col] = self.category
            else:
                data[col] = (False if col == "sustain"
                             else None if col in ("evidence", "explanation", "period_kind") else np.nan)
        return pd.DataFrame(data, index=index)

    def sustaining(self, cells: pd.DataFrame, indicator: str | None = None) -> pd.DataFrame:
        """Hysteresis: cells (``service_id``, ``month_index``[, ``indicator``]) still beyond a
        lower bar than the one that opens an alert. They open nothing; they keep an open alert
        of the same key from counting a normal period (alerts.lifecycle)."""
        rows = cells.copy()
        if indicator is not None:
            rows["indicator"] = indicator
        rows["sustain"] = True
        rows["score"] = 0.0
        rows["severity"] = "low"
        rows["explanation"] = None
        return self.findings(rows)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


def exclude_faulty_cells(panel: Panel, detectors) -> Panel:
    """Apply every detector's :meth:`Detector.exclusions` to ``panel`` (bad data is not bad
    service: a faulty value never reaches a statistical detector). Returns the panel."""
    for det in detectors:
        cells = det.exclusions(panel)
        if len(cells):
            panel.exclude(cells)
    return panel


def empty_findings() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=bool if c == "sustain" else object) for c in FINDING_COLUMNS})


def opening_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """The findings that can open an alert: all but the sustaining ones (:meth:`Detector.sustaining`)."""
    if "sustain" not in findings:
        return findings
    return findings[~findings["sustain"].fillna(False).astype(bool)]


def severity_from_score(score: np.ndarray | pd.Series, medium: float, high: float) -> np.ndarray:
    s = np.asarray(score, dtype=float)
    return np.where(s >= high, "high", np.where(s >= medium, "medium", "low"))
