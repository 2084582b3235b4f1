"""Named exceptions of the control plane; the API maps them to HTTP codes in one place."""

from __future__ import annotations


class SafezoneError(Exception):
    """Base class: ``message`` is a sentence a user can act on."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(SafezoneError):
    status_code = 422


class NotFound(SafezoneError):
    status_code = 404


class Conflict(SafezoneError):
    status_code = 409


class NotAuthenticated(SafezoneError):
    status_code = 401


class PermissionDenied(SafezoneError):
    status_code = 403


class InvalidTransition(SafezoneError):
    """A state change the current state does not allow."""

    status_code = 409


class Unavailable(SafezoneError):
    """A service the control plane needs (its database) does not answer right now; the
    call may be tried again shortly (what an interrupted call left half-done, the sweeper
    reconciles)."""

    status_code = 503


class StorageError(SafezoneError):
    """MinIO refused or failed; the operation was rolled back."""

    status_code = 502
