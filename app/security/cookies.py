"""The cookie policy (SPEC §5): every cookie's name, path and flags, set and dropped here.

Names are prefixed while ``Secure`` is on (``__Host-`` for the Path=/ cookies,
``__Secure-`` for the path-scoped ones) and plain in development. Every
cookie is SameSite=Strict; all but the CSRF cookie are HttpOnly (a page's
script echoes that one in X-CSRF-Token). Flask-free: the functions take the
response and the ``secure`` setting.

    cookie      path              HttpOnly  holds
    access      /                 yes       the access token
    refresh     /auth             yes       the refresh token (sent only where it is used)
    csrf        /                 no        the double-submit CSRF value
    mfa         /login/mfa        yes       the web login's pending MFA challenge
    password    /login/password   yes       the web login's forced-password-change token
    resumed     /                 yes       the pages' mark of a silent refresh just done
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from werkzeug.wrappers import Response

__all__ = ["Cookie", "CookieNames", "cookie_names", "drop_cookie", "put_cookie"]

Cookie = Literal["access", "refresh", "csrf", "mfa", "password", "resumed"]


@dataclass(frozen=True)
class CookieNames:
    access: str
    refresh: str
    csrf: str
    mfa: str  # the web login's pending MFA challenge
    resumed: str  # the web pages' mark of a silent refresh just done (no loops)
    password: str  # the web login's forced-password-change token


_SECURE = CookieNames("__Host-access_token", "__Secure-refresh_token", "__Host-csrf_token",
                      "__Secure-mfa_token", "__Host-resumed", "__Secure-password_change_token")
_PLAIN = CookieNames("access_token", "refresh_token", "csrf_token", "mfa_token", "resumed",
                     "password_change_token")

# (path, HttpOnly) of each cookie: the one place its flags are spelled out.
_FLAGS: dict[Cookie, tuple[str, bool]] = {
    "access": ("/", True),
    "refresh": ("/auth", True),
    "csrf": ("/", False),
    "mfa": ("/login/mfa", True),
    "password": ("/login/password", True),
    "resumed": ("/", True),
}


def cookie_names(secure: bool) -> CookieNames:
    """``__Host-`` for the Path=/ cookies, ``__Secure-`` for the path-scoped ones."""
    return _SECURE if secure else _PLAIN


def put_cookie(response: Response, which: Cookie, value: str, *, max_age: int,
               secure: bool) -> None:
    """Set cookie ``which`` on ``response`` with its policy's name, path and flags."""
    path, httponly = _FLAGS[which]
    response.set_cookie(getattr(cookie_names(secure), which), value, max_age=max_age,
                        path=path, httponly=httponly, secure=secure, samesite="Strict")


def drop_cookie(response: Response, which: Cookie, *, secure: bool) -> None:
    """Expire cookie ``which`` on the path it was set on."""
    path, httponly = _FLAGS[which]
    response.delete_cookie(getattr(cookie_names(secure), which), path=path, httponly=httponly,
                           secure=secure, samesite="Strict")
