"""Where a request's access token comes from: the Authorization header, else the cookie."""

from __future__ import annotations

from flask import request

from .. import state
from ..errors import InvalidToken
from .cookies import cookie_names

__all__ = ["read_token"]


def read_token() -> tuple[str | None, bool]:
    """The bearer token (header first, then the access cookie) and whether it came by cookie.

    A malformed Authorization header is refused (``malformed_header``), not skipped.
    """
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise InvalidToken("malformed_header")
        return value.strip(), False
    names = cookie_names(state.settings().cookie_secure)
    cookie = request.cookies.get(names.access)
    return (cookie, True) if cookie else (None, False)
