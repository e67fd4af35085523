"""E-mail addresses: one mailbox, nothing a mail header or a recipient list could split.

``a@evil.fr,b`` or ``a@x.fr\\nBcc: …`` would reach several recipients once written in a
``To:`` header; only a plain ``local@domain.tld`` (RFC 5321 dot-atom, no quoting, no
comments) is accepted wherever an address is stored or mailed.
"""
from __future__ import annotations

import re

_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_LOCAL}@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}")


def is_email(text: str) -> bool:
    """True for one plain address (at most 254 characters, local part at most 64)."""
    if not isinstance(text, str) or len(text) > 254:
        return False
    return _ADDRESS.fullmatch(text) is not None and len(text.split("@", 1)[0]) <= 64


def normalise_email(text: str) -> str | None:
    """The address stripped and lower-cased, or None when it is not one plain address."""
    text = (text or "").strip().lower()
    return text if is_email(text) else None
