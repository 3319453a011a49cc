"""Teleprom's exceptions, declared (as the Airflow providers' ``exceptions.py`` do). Each is also a
subclass of the shared kind in ``common/errors.py``, so callers catch either "any auth problem"
(``VendorAuthError``) or "a Teleprom problem" (``TelepromError``)."""

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


class TelepromError(VendorError):
    """Base of every Teleprom error."""

    vendor = "Teleprom"


class TelepromAuthError(TelepromError, VendorAuthError):
    """Teleprom refused the credentials."""


class TelepromPasswordExpiredError(TelepromAuthError, VendorPasswordExpiredError):
    """The Teleprom account password has expired: a person must renew it."""


class TelepromValidationError(TelepromError, VendorValidationError):
    """Teleprom refused the request as malformed."""


class TelepromNotFoundError(TelepromError, VendorNotFoundError):
    """What was asked for does not exist at Teleprom."""


class TelepromNoCreditsError(TelepromError, VendorNoCreditsError):
    """The Teleprom account has no credits left."""


class TelepromTransientError(TelepromError, VendorTransientError):
    """A connection failure, timeout, 429 or 5xx from Teleprom: worth retrying where that is safe."""


class TelepromAmbiguousError(TelepromTransientError, VendorAmbiguousError):
    """The request may have reached Teleprom: a send is never repeated blindly."""


#: The family, as the shared transport raises it.
TELEPROM_ERRORS = VendorErrors(
    base=TelepromError,
    auth=TelepromAuthError,
    password_expired=TelepromPasswordExpiredError,
    validation=TelepromValidationError,
    not_found=TelepromNotFoundError,
    no_credits=TelepromNoCreditsError,
    transient=TelepromTransientError,
    ambiguous=TelepromAmbiguousError,
)
