"""CSV cells that a spreadsheet cannot run as formulas (OWASP CSV injection)."""
from __future__ import annotations

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """Prefix text that a spreadsheet would evaluate with an apostrophe; numbers pass as is."""
    if isinstance(value, str) and value.startswith(_TRIGGERS):
        return "'" + value
    return value
