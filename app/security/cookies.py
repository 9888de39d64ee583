"""Cookie names (SPEC §5): prefixed while ``Secure`` is on, plain in development."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CookieNames", "cookie_names"]


@dataclass(frozen=True)
class CookieNames:
    access: str
    refresh: str
    csrf: str
    mfa: str  # the web login's pending MFA challenge
    resumed: str  # the web pages' mark of a silent refresh just done (no loops)


_SECURE = CookieNames("__Host-access_token", "__Secure-refresh_token", "__Host-csrf_token",
                      "__Secure-mfa_token", "__Host-resumed")
_PLAIN = CookieNames("access_token", "refresh_token", "csrf_token", "mfa_token", "resumed")


def cookie_names(secure: bool) -> CookieNames:
    """``__Host-`` for the Path=/ cookies, ``__Secure-`` for the path-scoped ones."""
    return _SECURE if secure else _PLAIN
