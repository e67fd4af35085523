"""The in-memory panel the detectors read: current observations, register, quarantine."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from monitor.vocabulary.periods import FREQUENCY_RANK, PERIOD_STEP

OBS_COLUMNS = ["service_id", "indicator", "period", "period_kind", "month_index", "value",
               "numerator", "denominator"]


@dataclass
class Panel:
    observations: pd.DataFrame                  # OBS_COLUMNS, current versions only
    services: pd.DataFrame                      # register, indexed by service_id
    quarantine: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["service_id", "indicator", "period", "month_index", "reason_code", "reason"]))
    excluded: pd.DataFrame | None = None        # (service_id, indicator, month_index) kept out of statistics
    cache: dict = field(default_factory=dict)   # results shared by detectors within one run
    _rows: dict | None = field(default=None, repr=False)   # indicator -> row positions (observations only)

    def __post_init__(self) -> None:
        obs = self.observations
        obs["month_index"] = obs["month_index"].astype(int)
        for c in ("value", "numerator", "denominator"):
            obs[c] = pd.to_numeric(obs[c], errors="coerce").astype(float)

    def _indicator_rows(self, code: str) -> pd.DataFrame:
        """All observations of one indicator, from one grouping of the panel's rows (the
        panel is read for each indicator several times; comparing every row's code each time
        costs seconds on a national panel of 18,000 services)."""
        if self._rows is None:
            self._rows = self.observations.groupby("indicator", sort=False).indices
        rows = self._rows.get(code)
        return self.observations.iloc[rows] if rows is not None else self.observations.iloc[0:0]

    @property
    def months(self) -> np.ndarray:
        """All months from the first to the last observed (month indexes)."""
        if self.observations.empty:
            return np.array([], dtype=int)
        return np.arange(self.observations["month_index"].min(), self.observations["month_index"].max() + 1)

    @property
    def last_month(self) -> int | None:
        return None if self.observations.empty else int(self.observations["month_index"].max())

    def upto(self, month: int) -> "Panel":
        """The panel as it stood at ``month``: only periods ending on or before it."""
        q = self.quarantine
        return Panel(self.observations[self.observations["month_index"] <= month].copy(),
                     self.services,
                     q[q["month_index"].notna() & (q["month_index"] <= month)].copy(),
                     None)

    def indicator(self, code: str, statistical: bool = True) -> pd.DataFrame:
        """Observations of one indicator; when ``statistical``, excluded (faulty) cells removed
        and each service judged at its finest frequency: a service that sends an indicator
        monthly and also yearly is judged on the months (the yearly value is checked against
        them by the data-quality detector :class:`detectors.quality.FrequencyMismatch`)."""
        key = ("indicator", code, statistical)      # read-only for callers; cleared by exclude()
        if key in self.cache:
            return self.cache[key]
        obs = self._indicator_rows(code)
        if statistical and obs["period_kind"].nunique() > 1:
            obs = obs[finest_frequency(obs)]
        if statistical and self.excluded is not None and len(self.excluded):
            ex = self.excluded[self.excluded["indicator"].isin([code, "*"])]
            if len(ex):
                bad = pd.MultiIndex.from_arrays([ex["service_id"].astype(str), ex["month_index"].astype(int)])
                cells = pd.MultiIndex.from_arrays([obs["service_id"].astype(str), obs["month_index"].astype(int)])
                obs = obs[~cells.isin(bad)]
        self.cache[key] = obs
        return obs

    def wide(self, code: str, column: str = "value", statistical: bool = True) -> pd.DataFrame:
        """months × services matrix of one indicator's column (NaN where absent)."""
        return wide_last(self.indicator(code, statistical), column)

    def period_kind(self, code: str | None = None) -> str:
        """The frequency an indicator is reported at (``M``, ``Q`` or ``Y``; the most common one
        when services differ), or, with no indicator, the panel's finest frequency."""
        key = ("period_kind", code)
        if key not in self.cache:
            kinds = self.observations["period_kind"] if code is None else self._indicator_rows(code)["period_kind"]
            present = set(kinds.unique())
            if code is None:
                kind = next((k for k in ("M", "Q", "Y") if k in present), "M")
            else:
                kind = str(kinds.mode().iloc[0]) if len(kinds) else "M"
            self.cache[key] = kind
        return self.cache[key]

    def period_step(self, code: str | None = None) -> int:
        """Months per period of an indicator's frequency (1, 3 or 12)."""
        return PERIOD_STEP[self.period_kind(code)]

    def exclude(self, cells: pd.DataFrame) -> None:
        """Keep these (service_id, indicator, month_index) cells out of statistical detectors."""
        cells = cells[["service_id", "indicator", "month_index"]]
        self.cache.clear()
        self.excluded = cells if self.excluded is None else pd.concat([self.excluded, cells], ignore_index=True)


def trailing_windows(a: np.ndarray, window: int, current: bool = True) -> np.ndarray:
    """(T, S, window) view, for each row of a periods × services matrix, of the ``window`` rows
    ending with it (``current``) or just before it, NaN-padded at the start."""
    padded = np.vstack([np.full((window if not current else window - 1, a.shape[1]), np.nan), a])
    return sliding_window_view(padded if current else padded[:-1], window, axis=0)


def finest_frequency(obs: pd.DataFrame) -> pd.Series:
    """Whether each row is at its service's finest frequency of the rows given (one indicator)."""
    rank = obs["period_kind"].map(FREQUENCY_RANK)
    return rank == rank.groupby(obs["service_id"]).transform("min")


def wide_last(obs: pd.DataFrame, column: str) -> pd.DataFrame:
    """months × services matrix of ``column``: the last non-missing value of each cell, months
    and services without any value left out. The same frame as
    ``obs.pivot_table(index="month_index", columns="service_id", values=column, aggfunc="last")``,
    built with one scatter instead of a group-by (this runs for every indicator and column)."""
    o = obs[obs[column].notna()]
    mc, mu = pd.factorize(o["month_index"], sort=True)
    sc, su = pd.factorize(o["service_id"], sort=True)
    key = mc.astype(np.int64) * len(su) + sc
    _, from_end = np.unique(key[::-1], return_index=True)      # the last row of each cell
    pos = len(key) - 1 - from_end
    arr = np.full((len(mu), len(su)), np.nan)
    arr[mc[pos], sc[pos]] = o[column].to_numpy(dtype=float)[pos]
    return pd.DataFrame(arr, index=pd.Index(mu, name="month_index"),
                        columns=pd.Index(np.asarray(su, dtype=object), name="service_id", dtype="str"))
