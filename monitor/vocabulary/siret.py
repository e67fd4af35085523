"""SIRET validation (14 digits, Luhn checksum)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def luhn_valid(siret: str) -> bool:
    s = str(siret)
    if len(s) != 14 or not (s.isascii() and s.isdigit()):   # "²" or "١" are digits for isdigit()
        return False
    total = 0
    for i, ch in enumerate(reversed(s)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_valid_series(values: pd.Series) -> pd.Series:
    """Vectorised Luhn check over a Series of strings."""
    s = values.astype("string").fillna("")
    shape_ok = s.str.fullmatch(r"[0-9]{14}").fillna(False).astype(bool)   # ASCII digits only
    out = pd.Series(False, index=values.index)
    if not shape_ok.any():
        return out
    digits = np.frombuffer("".join(s[shape_ok].tolist()).encode("ascii"), dtype=np.uint8)
    digits = (digits - ord("0")).reshape(-1, 14).astype(np.int64)
    doubled = digits[:, 0::2] * 2          # positions 0,2,... from the left = odd from the right
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    total = doubled.sum(axis=1) + digits[:, 1::2].sum(axis=1)
    out[shape_ok] = (total % 10) == 0
    return out


def luhn_complete(prefix13: str) -> str:
    """Append the Luhn check digit to 13 digits (used by tests and fixtures)."""
    for d in "0123456789":
        if luhn_valid(prefix13 + d):
            return prefix13 + d
    raise ValueError(prefix13)
