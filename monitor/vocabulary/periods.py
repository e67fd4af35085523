"""Period parsing and ordering.

Periods are stored as canonical strings (``YYYY-MM``, ``YYYY-Qn``, ``YYYY``) plus an integer
``month_index`` = year * 12 + month - 1 of the period's *last* month, which orders mixed
frequencies: a quarterly or annual value becomes visible to detection as of its last month.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

_MONTH_NAMES_FR = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                   "septembre", "octobre", "novembre", "décembre"]

# YYYY, YYYY-MM (also YYYYMM, YYYY/MM, YYYY-M), YYYY-Qn / YYYY-Tn (French "trimestre"), and
# the first day of a month as a spreadsheet turns "2025-03" into a date (2025-03-01, with an
# optional midnight time): a month. ASCII digits only.
_PATTERN = (r"([0-9]{4})(?:[-/ ]?(?:(0?[1-9]|1[0-2])(?:-01(?:[ T]00:00(?::00)?)?)?|[QqTt]([1-4])))?")
_RE = re.compile(r"^\s*" + _PATTERN + r"\s*$")


class PeriodError(ValueError):
    pass


def parse_period(text: str) -> tuple[str, str, int]:
    """Return (canonical, kind, month_index) with kind in M, Q, Y; raise PeriodError."""
    m = _RE.match(str(text))
    if not m:
        raise PeriodError(f"période « {text} » illisible (attendu AAAA-MM, AAAA-Tn/AAAA-Qn ou AAAA)")
    year = int(m.group(1))
    if not 1990 <= year <= 2100:
        raise PeriodError(f"année {year} hors plage dans la période « {text} »")
    if m.group(2):
        month = int(m.group(2))
        return f"{year:04d}-{month:02d}", "M", year * 12 + month - 1
    q = m.group(3)
    if q:
        q = int(q)
        return f"{year:04d}-Q{q}", "Q", year * 12 + q * 3 - 1
    return f"{year:04d}", "Y", year * 12 + 11


def _parse_periods(s: pd.Series) -> pd.DataFrame:
    s = s.astype("string").str.strip()
    parts = s.str.extract("^" + _PATTERN + "$")
    year = pd.to_numeric(parts[0], errors="coerce")
    month = pd.to_numeric(parts[1], errors="coerce")
    quarter = pd.to_numeric(parts[2], errors="coerce")
    ok = year.between(1990, 2100).fillna(False).astype(bool).to_numpy()
    kind = np.where(month.notna(), "M", np.where(quarter.notna(), "Q", "Y"))
    last_month = np.where(month.notna(), month, np.where(quarter.notna(), quarter * 3, 12))
    idx = (year * 12 + last_month - 1).to_numpy(dtype=float)
    yi = year.fillna(0).astype(int).astype(str).str.zfill(4)
    canon = np.where(kind == "M", yi + "-" + month.fillna(0).astype(int).astype(str).str.zfill(2),
                     np.where(kind == "Q", yi + "-Q" + quarter.fillna(0).astype(int).astype(str), yi))
    canon = canon.astype(object)
    kind = kind.astype(object)
    canon[~ok] = None
    kind[~ok] = None
    idx[~ok] = np.nan
    return pd.DataFrame({"period": canon, "period_kind": kind, "month_index": idx})


def parse_periods(values: pd.Series) -> pd.DataFrame:
    """Vectorised parse: returns columns period, period_kind, month_index (NaN if invalid).

    Works on the distinct values (a file has few periods), so it is cheap on large files."""
    codes, uniques = pd.factorize(values.astype("string"), use_na_sentinel=False)
    parsed = _parse_periods(pd.Series(uniques.to_numpy(dtype=object), dtype=object))
    out = pd.DataFrame({
        "period": parsed["period"].to_numpy(dtype=object)[codes],
        "period_kind": parsed["period_kind"].to_numpy(dtype=object)[codes],
        "month_index": parsed["month_index"].to_numpy(dtype=float)[codes],
    }, index=values.index)
    return out


def month_index(period: str) -> int:
    return parse_period(period)[2]


def month_label(index: int) -> str:
    """Canonical YYYY-MM of a month index."""
    year, month0 = divmod(int(index), 12)
    return f"{year:04d}-{month0 + 1:02d}"


def month_label_fr(index: int) -> str:
    """French label, e.g. « mars 2025 »."""
    year, month0 = divmod(int(index), 12)
    return f"{_MONTH_NAMES_FR[month0]} {year}"


def period_label_fr(period: str) -> str:
    """French name of a period code: « mars 2025 », « 2e trimestre 2025 », « 2024 »."""
    canon, kind, idx = parse_period(period)
    return period_name_fr(idx, kind)


# --------------------------------------------------------------------------- a period of any frequency
# Detection works on month indexes (a quarter or a year counts as of its last month); these
# name the period a value belongs to as the data and a person would: 2025-03, 2025-Q2, 2024.
PERIOD_STEP = {"M": 1, "Q": 3, "Y": 12}
FREQUENCY_RANK = {"M": 0, "Q": 1, "Y": 2}     # finest first


def current_month_index(today=None) -> int:
    """Month index of the current month (UTC): a period that starts after it is not data."""
    import datetime as _dt

    today = today or _dt.datetime.now(_dt.timezone.utc).date()
    return today.year * 12 + today.month - 1


def is_future(index, kind, current: int | None = None):
    """Whether the period ending with month ``index`` (of frequency ``kind``) starts after the
    current month; works on scalars and on pandas Series. A year or a quarter under way is not
    in the future: its first month has come."""
    current = current_month_index() if current is None else current
    if isinstance(kind, pd.Series):
        # on the distinct kinds (a Series.map of text runs element by element in Python)
        codes, kinds = pd.factorize(kind, use_na_sentinel=True)
        steps = np.array([PERIOD_STEP.get(k, 1) for k in kinds] + [1], dtype=float)
        step = pd.Series(steps[codes], index=kind.index)
    else:
        step = PERIOD_STEP.get(kind, 1)
    return index - step + 1 > current


def period_code(index: int, kind: str = "M") -> str:
    """Canonical code of the period of that frequency ending with month ``index``."""
    year, month0 = divmod(int(index), 12)
    if kind == "Y":
        return f"{year:04d}"
    if kind == "Q":
        return f"{year:04d}-Q{month0 // 3 + 1}"
    return f"{year:04d}-{month0 + 1:02d}"


def period_name_fr(index: int, kind: str = "M") -> str:
    """« mars 2025 », « 2e trimestre 2025 » (« 1er trimestre »), « 2024 »."""
    year, month0 = divmod(int(index), 12)
    if kind == "Y":
        return f"{year}"
    if kind == "Q":
        q = month0 // 3 + 1
        return f"{q}{'er' if q == 1 else 'e'} trimestre {year}"
    return month_label_fr(index)


def period_phrase_fr(index: int, kind: str = "M") -> str:
    """The period as a sentence says it: « en mars 2025 », « au 2e trimestre 2025 », « en 2024 »."""
    return f"{'au' if kind == 'Q' else 'en'} {period_name_fr(index, kind)}"


def since_fr(index: int, kind: str = "M") -> str:
    """« depuis mars 2025 », « depuis le 2e trimestre 2025 », « depuis 2024 »."""
    return f"depuis {'le ' if kind == 'Q' else ''}{period_name_fr(index, kind)}"


#: « 2 des 3 derniers mois / trimestres / années »
LAST_PERIODS_FR = {"M": "derniers mois", "Q": "derniers trimestres", "Y": "dernières années"}


def period_of_fr(index: int, kind: str = "M") -> str:
    """« de mars 2025 », « d'août 2024 », « du 2e trimestre 2025 », « de 2024 »."""
    if kind == "Q":
        return f"du {period_name_fr(index, kind)}"
    name = period_name_fr(index, kind)
    return f"d'{name}" if name[0] in "aeiouéèê" else f"de {name}"


def kind_of(period) -> str:
    """The frequency of a period code (``M`` when it cannot be read)."""
    try:
        return parse_period(str(period))[1]
    except PeriodError:
        return "M"
