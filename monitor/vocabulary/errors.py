"""Errors of the service layer: each carries one French sentence a person can act on."""
from __future__ import annotations


class ServiceError(Exception):
    """Base of the service layer's errors (the CLI and the dashboard show ``message``)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class AccessDenied(ServiceError, PermissionError):
    """A read or write outside the user's role or regions."""


class NotFound(ServiceError, LookupError):
    """No such alert, follow-up or user."""


class InvalidAction(ServiceError, ValueError):
    """A change the rules do not allow (wrong state, missing reason, date out of range...)."""


class ConcurrentModification(ServiceError):
    """Someone else changed the record since the caller read it (optimistic locking)."""


def require_known(values, allowed, what: str) -> None:
    """Refuse codes outside ``allowed`` with one French sentence: « {what} inconnu : … »."""
    unknown = [x for x in values if x not in allowed]
    if unknown:
        raise InvalidAction(f"{what} inconnu : {', '.join(unknown)} (attendu : {', '.join(allowed)}).")
