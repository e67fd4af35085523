"""CSV cells that a spreadsheet cannot run as formulas (OWASP CSV injection).

A French spreadsheet may split a cell on ``;`` or ``,`` (or a tab, a line break, ``|``) when
it opens the file, so a formula can start anywhere after such a separator (``x;=1+2;y``),
not only at the start of the cell. Every such start is neutralised with an apostrophe,
which makes the spreadsheet read what follows as text.
"""
from __future__ import annotations

import re

_SEPARATORS = re.compile(r"([;,\t\r\n|])")
# a formula trigger after optional blanks: =, @, a tab or a carriage return, or a sign unless
# the whole part is a plain number ("-3", "+0.5 %" are kept; "-A1", "+33 1 23", "-3 +cmd|…" are not)
_TRIGGER = re.compile(r"^([ \u00a0]*)(?=[=@\t\r]|[+\-](?![0-9.]+[ \u00a0]*%?[ \u00a0]*$))")


def _safe_part(part: str) -> str:
    return _TRIGGER.sub(r"\1'", part, count=1)


def safe_cell(value):
    """Text whose start, or any part after a separator, would be evaluated by a spreadsheet
    gets an apostrophe there; numbers and harmless text pass as is."""
    if not isinstance(value, str):
        return value
    if value.startswith(("\t", "\r")):
        return "'" + value
    return "".join(p if i % 2 else _safe_part(p) for i, p in enumerate(_SEPARATORS.split(value)))
