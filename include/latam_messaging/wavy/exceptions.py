"""Wavy's exceptions, declared (as the Airflow providers' ``exceptions.py`` do). Each is also a
subclass of the shared kind in ``common/errors.py``, so callers catch either "any auth problem"
(``VendorAuthError``) or "a Wavy problem" (``WavyError``)."""

from __future__ import annotations

from latam_messaging.common.errors import (
    VendorAmbiguousError,
    VendorAuthError,
    VendorError,
    VendorErrors,
    VendorNoCreditsError,
    VendorNotFoundError,
    VendorPasswordExpiredError,
    VendorTransientError,
    VendorValidationError,
)


class WavyError(VendorError):
    """Base of every Wavy error."""

    vendor = "Wavy"


class WavyAuthError(WavyError, VendorAuthError):
    """Wavy refused the credentials."""


class WavyPasswordExpiredError(WavyAuthError, VendorPasswordExpiredError):
    """The Wavy account password has expired: a person must renew it."""


class WavyValidationError(WavyError, VendorValidationError):
    """Wavy refused the request as malformed."""


class WavyNotFoundError(WavyError, VendorNotFoundError):
    """What was asked for does not exist at Wavy."""


class WavyNoCreditsError(WavyError, VendorNoCreditsError):
    """The Wavy account has no credits left."""


class WavyTransientError(WavyError, VendorTransientError):
    """A connection failure, timeout, 429 or 5xx from Wavy: worth retrying where that is safe."""


class WavyAmbiguousError(WavyTransientError, VendorAmbiguousError):
    """The request may have reached Wavy: a send is never repeated blindly."""


#: The family, as the shared transport raises it.
WAVY_ERRORS = VendorErrors(
    base=WavyError,
    auth=WavyAuthError,
    password_expired=WavyPasswordExpiredError,
    validation=WavyValidationError,
    not_found=WavyNotFoundError,
    no_credits=WavyNoCreditsError,
    transient=WavyTransientError,
    ambiguous=WavyAmbiguousError,
)
