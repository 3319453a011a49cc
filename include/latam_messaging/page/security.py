"""Who may write from the Messaging page, and proof that a write came from the page itself.

* **Writes are a person's decision**: :func:`require_editor` lets through only users the Airflow auth
  manager allows to *edit* the ``Messaging`` custom view (``method="POST"``) **and** to create DAG runs
  (every write queues or stops sends that the vendors' send DAGs carry out, and a confirmation triggers
  one). The second check is what makes a viewer a reader with auth managers that do not tell a custom
  view's methods apart (the simple auth manager allows any custom view to any viewer); anonymous → 401
  (Airflow's own authentication), a viewer → 403. The user's name (:func:`user_name`) goes into
  ``audit_log``.
* **Cross-site requests are refused.** A browser sends the UI's ``_token`` cookie with any request to the
  API server, including a form another site posts. A cookie-authenticated write must therefore carry the
  anti-CSRF token in the header :data:`CSRF_HEADER` (a header, never a form field: another site's form
  cannot set one, and the body is not read before the request is known to be the page's): an HMAC of
  the session cookie under a server key, which the page embeds and another site cannot read. A request
  that names an ``Origin`` other than the API server's own is refused too. A request with an
  ``Authorization: Bearer`` header (a script, the REST way) needs no token: browsers never add that header
  on their own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

RESOURCE_NAME = "Messaging"
CSRF_HEADER = "X-CSRF-Token"
SESSION_COOKIE = "_token"


@lru_cache(maxsize=1)
def _key() -> bytes:
    """The API server's JWT secret (the same on every API server process), else one random per process."""
    try:
        from airflow.configuration import conf

        secret = conf.get("api_auth", "jwt_secret", fallback="")
    except Exception:  # no Airflow configuration (a bare app in a test)
        secret = ""
    return hashlib.sha256(b"messaging-csrf:" + secret.encode()).digest() if secret else secrets.token_bytes(32)


def csrf_token(request: Request) -> str:
    """The token the page embeds for its own writes: bound to this browser session's cookie."""
    session = request.cookies.get(SESSION_COOKIE, "")
    return hmac.new(_key(), session.encode(), hashlib.sha256).hexdigest() if session else ""


def _bearer(request: Request) -> bool:
    return request.headers.get("authorization", "").lower().startswith("bearer ")


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    own = request.headers.get("host", "")
    return urlsplit(origin).netloc == own


async def authenticated_user(request: Request, method: str) -> Any:
    """Airflow's authentication (cookie or bearer JWT), then the auth manager's decision for ``method`` on
    the ``Messaging`` custom view: 401 without a valid login, 403 when the user may not."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)  # auto_error=False: None without a bearer header
    user = await get_user(request=request, _oauth_token=None, bearer_credentials=credentials)
    manager = get_auth_manager()
    allowed = manager.is_authorized_custom_view(method=method, resource_name=RESOURCE_NAME, user=user)
    if allowed and method != "GET":
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

        allowed = manager.is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN, user=user)
    if not allowed:
        verb = "read" if method == "GET" else "change"
        raise HTTPException(status_code=403, detail=f"Forbidden: you may not {verb} the Messaging page")
    return user


async def require_editor(request: Request) -> Any:
    """For every write route: an editor of the Messaging view, and a request the page itself made."""
    user = await authenticated_user(request, "POST")
    if not _same_origin(request):
        raise HTTPException(status_code=403, detail="Forbidden: a cross-site request")
    if not _bearer(request):
        sent = request.headers.get(CSRF_HEADER, "")
        expected = csrf_token(request)
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            # "stale" tells the page to fetch this session's token (GET /api/csrf-token, same-origin only) and
            # try once more: Airflow renews the session cookie while a page stays open
            headers = {"X-CSRF-Stale": "1"} if sent and expected else None
            raise HTTPException(status_code=403, detail="Forbidden: missing or wrong anti-CSRF token", headers=headers)
    return user


def user_name(user: Any) -> str:
    """The name the audit log records."""
    for attribute in ("get_name", "get_id"):
        getter = getattr(user, attribute, None)
        if callable(getter):
            name = getter()
            if name:
                return str(name)
    return str(getattr(user, "username", None) or "unknown user")
