"""ITD Chile's exceptions, declared (as the Airflow providers' ``exceptions.py`` do). Each is also a
subclass of the shared kind in ``common/errors.py``, so callers catch either "any auth problem"
(``VendorAuthError``) or "a ITD Chile problem" (``ItdError``)."""

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


class ItdError(VendorError):
    """Base of every ITD Chile error."""

    vendor = "ITD Chile"


class ItdAuthError(ItdError, VendorAuthError):
    """ITD Chile refused the credentials."""


class ItdPasswordExpiredError(ItdAuthError, VendorPasswordExpiredError):
    """The ITD Chile account password has expired: a person must renew it."""


class ItdValidationError(ItdError, VendorValidationError):
    """ITD Chile refused the request as malformed."""


class ItdNotFoundError(ItdError, VendorNotFoundError):
    """What was asked for does not exist at ITD Chile."""


class ItdNoCreditsError(ItdError, VendorNoCreditsError):
    """The ITD Chile account has no credits left."""


class ItdTransientError(ItdError, VendorTransientError):
    """A connection failure, timeout, 429 or 5xx from ITD Chile: worth retrying where that is safe."""


class ItdAmbiguousError(ItdTransientError, VendorAmbiguousError):
    """The request may have reached ITD Chile: a send is never repeated blindly."""


#: The family, as the shared transport raises it.
ITD_ERRORS = VendorErrors(
    base=ItdError,
    auth=ItdAuthError,
    password_expired=ItdPasswordExpiredError,
    validation=ItdValidationError,
    not_found=ItdNotFoundError,
    no_credits=ItdNoCreditsError,
    transient=ItdTransientError,
    ambiguous=ItdAmbiguousError,
)
