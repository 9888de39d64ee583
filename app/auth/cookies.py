"""The session cookies of SPEC §5, set and cleared in one place."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from flask import request
from werkzeug.wrappers import Response

from .. import state
from ..security.cookies import cookie_names, drop_cookie, put_cookie

__all__ = ["clear_session_cookies", "set_access_cookie", "set_session_cookies"]

_CSRF_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) makes


def set_access_cookie(response: Response, access_token: str) -> None:
    """The access token cookie alone (step-up renews it without touching the session)."""
    s = state.settings()
    put_cookie(response, "access", access_token, max_age=int(s.access_token_ttl.total_seconds()),
               secure=s.cookie_secure)
    response.headers["Cache-Control"] = "no-store"


def set_session_cookies(
    response: Response, *, access_token: str, refresh_token: str, session_expires_at: datetime,
    keep_csrf: bool = False,
) -> None:
    """Access (Path=/), refresh (Path=/auth) and CSRF cookies, all SameSite=Strict.

    ``keep_csrf`` (a refresh) keeps the request's CSRF value: forms and scripts
    in the session's other tabs still hold it. A login always gets a new one.
    """
    secure = state.settings().cookie_secure
    refresh_age = max(1, int((session_expires_at - state.now()).total_seconds()))
    set_access_cookie(response, access_token)
    # Readable by JavaScript on purpose: the page echoes it in X-CSRF-Token.
    put_cookie(response, "csrf", _csrf_value(cookie_names(secure).csrf, keep_csrf),
               max_age=refresh_age, secure=secure)
    # Last, so that clients keeping only the last Set-Cookie (wrk scripts) keep this one.
    put_cookie(response, "refresh", refresh_token, max_age=refresh_age, secure=secure)


def _csrf_value(name: str, keep: bool) -> str:
    """The request's CSRF value when ``keep`` and it has the shape we make, else a new one."""
    current = request.cookies.get(name, "") if keep else ""
    return current if _CSRF_SHAPE.fullmatch(current) else secrets.token_urlsafe(32)


def clear_session_cookies(response: Response) -> None:
    """Expire all three cookies on the paths they were set on."""
    secure = state.settings().cookie_secure
    for which in ("access", "refresh", "csrf"):
        drop_cookie(response, which, secure=secure)
