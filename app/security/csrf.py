"""CSRF for cookie-authenticated writes (SPEC §5): double-submit token and same origin."""

from __future__ import annotations

from flask import request

from .. import state
from ..core.crypto import constant_time_equal
from ..errors import CsrfFailed
from .cookies import cookie_names

__all__ = ["check_csrf"]


def check_csrf() -> None:
    """Double-submit token and same-origin check for cookie-authenticated writes (SPEC §5)."""
    names = cookie_names(state.settings().cookie_secure)
    expected = request.cookies.get(names.csrf, "")
    offered = request.headers.get("X-CSRF-Token", "")
    if not offered and request.mimetype == "application/x-www-form-urlencoded":
        offered = request.form.get("csrf_token", "")  # the web pages' forms
    if not expected or not offered or not constant_time_equal(expected, offered):
        raise CsrfFailed()
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") != request.host_url.rstrip("/"):
        raise CsrfFailed("The request's origin is not this site.")
