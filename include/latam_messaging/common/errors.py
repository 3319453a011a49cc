"""Typed errors shared by every vendor, so DAGs decide by kind, not by vendor or HTTP code.

Each vendor declares its own family in ``<vendor>/exceptions.py`` (``TelepromAuthError(TelepromError,
VendorAuthError)``), so callers can catch either "any auth problem" or "a Teleprom problem".
Messages never carry response bodies: those may hold phone numbers and message text.
"""

from __future__ import annotations

from dataclasses import dataclass


class VendorError(Exception):
    """Base of every error a vendor call raises."""

    vendor: str = "vendor"

    def __init__(self, message: str, *, status_code: int | None = None, vendor_message: str | None = None):
        self.status_code = status_code
        self.vendor_message = vendor_message
        detail = f" (HTTP {status_code})" if status_code else ""
        super().__init__(f"{self.vendor}: {message}{detail}")


class VendorAuthError(VendorError):
    """Credentials refused or expired: retrying will not help, fix the connection."""


class VendorPasswordExpiredError(VendorAuthError):
    """The account password has expired at the vendor; a person must renew it."""


class VendorValidationError(VendorError):
    """The vendor refused the request as malformed (400/415): reject the row, do not retry."""


class VendorNotFoundError(VendorError):
    """The thing asked for does not exist at the vendor."""


class VendorNoCreditsError(VendorError):
    """The account has no credits left: stop sending, keep the rest pending. Never retried."""


class VendorTransientError(VendorError):
    """Connection failure, timeout, 429 or 5xx: worth retrying with backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class VendorAmbiguousError(VendorTransientError):
    """The request may have reached the vendor (e.g. read timeout): a send must not be repeated blindly."""


@dataclass(frozen=True)
class VendorErrors:
    """The exception classes one vendor raises, one per kind the DAGs tell apart."""

    base: type[VendorError]
    auth: type[VendorAuthError]
    password_expired: type[VendorPasswordExpiredError]
    validation: type[VendorValidationError]
    not_found: type[VendorNotFoundError]
    no_credits: type[VendorNoCreditsError]
    transient: type[VendorTransientError]
    ambiguous: type[VendorAmbiguousError]
