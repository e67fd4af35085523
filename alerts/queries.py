"""The read scope of a signed-in user (who they are, which regions they may see)."""
from __future__ import annotations

from dataclasses import dataclass



@dataclass(frozen=True)
class Scope:
    """What a signed-in user may see: ``regions`` None means every region."""
    email: str
    role: str
    regions: tuple[str, ...] | None

    @classmethod
    def of(cls, user) -> "Scope":
        if user.role in ("national", "admin"):
            return cls(user.email, user.role, None)
        return cls(user.email, user.role, tuple(r for r in (user.regions or "").split(",") if r))
