"""What every web page shares: the blueprint, the signed-in user, form CSRF, notices, errors.

Pages use the JSON API's cookies and services. A page whose access token has
expired sends the browser through ``/auth/resume`` (where the refresh cookie
is sent) and back, so a live session never sees a login form. Every failure
becomes a page with a plain sentence: never JSON, never a stack trace.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from marshmallow import Schema
from werkzeug.wrappers import Response

from .. import state
from ..auth.cookies import clear_session_cookies
from ..core.devices import device_name
from ..errors import InvalidToken
from ..extensions import db
from ..models import User
from ..security import Principal, authenticate
from ..security.cookies import cookie_names, drop_cookie, put_cookie

__all__ = [
    "LoginNeeded",
    "NOTICES",
    "Notice",
    "Page",
    "PageUser",
    "bp",
    "drop_resumed",
    "form",
    "local_path",
    "mark_resumed",
    "page",
    "signed_in",
    "to_login",
]

log = logging.getLogger("tessera.web")

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/web/static")

_DEFAULT_PAGE = "/account"
# What a page view returns: a redirect, or a rendered page and its status.
Page = Response | tuple[str, int]
# How long the mark of a silent refresh lives: the redirect back follows at once.
_RESUMED_MAX_AGE = 30


@dataclass(frozen=True)
class Notice:
    kind: str  # "info" or "error"
    text: str


# Messages a redirect may ask for by code (``?n=``): fixed texts, never reflected input.
NOTICES = {
    "logged_out": Notice("info", "You are logged out."),
    "everywhere": Notice("info", "You are logged out on every device."),
    "expired": Notice("error", "Your session has ended; please log in again."),
    "reuse": Notice("error", "Your session was ended because an old sign-in token was used "
                             "again, which can mean it was stolen. Please log in again."),
    "mfa_expired": Notice("error", "This login attempt has ended; please log in again."),
    "session_ended": Notice("info", "The session has ended."),
    "password_changed": Notice("info", "Your password is changed; your other sessions have ended."),
    "password_set": Notice("info", "Your new password is set."),
    "stepped_up": Notice("info", "Thanks, you are confirmed for the next few minutes."),
    "passkey_added": Notice("info", "Your passkey is added."),
    "passkey_removed": Notice("info", "The passkey is removed."),
    "user_revoked": Notice("info", "Every token and session of that user has ended."),
    "user_updated": Notice("info", "The user is updated."),
    "user_created": Notice("info", "The user is created."),
    "client_updated": Notice("info", "The client's scopes are set."),
    "client_deleted": Notice("info", "The client is deleted; its secrets no longer work."),
    "mfa_reset": Notice("info", "Two-step verification is reset; the user's sessions have ended."),
    "rotated": Notice("info", "The keys are rotated."),
    "key_revoked": Notice("info", "The key is revoked."),
    "phase_set": Notice("info", "The migration phase is set."),
    "resubmit": Notice("info", "Your session was renewed; please submit the form again."),
    "resume_failed": Notice("error", "We could not keep you signed in; please log in again."),
}


@dataclass(frozen=True)
class PageUser:
    """The signed-in user: who the header names, and the principal the services act for."""

    username: str
    principal: Principal

    @property
    def roles(self) -> frozenset[str]:
        return self.principal.roles

    @property
    def session_id(self) -> str | None:
        return self.principal.session_id

    @property
    def acr(self) -> str:
        return self.principal.acr


class LoginNeeded(Exception):
    """The page needs a signed-in user and the request's access token did not do."""


@bp.app_template_filter("device")
def _device(user_agent: str | None) -> str:
    """``{{ s.user_agent | device }}``: "Chrome on Linux" rather than the raw header."""
    return device_name(user_agent)


@bp.before_request
def _cookie_only() -> None:
    """Pages authenticate by the access cookie alone.

    ``authenticate()`` reads an Authorization header first, and a browser may
    send one it keeps for this host (Basic credentials for a proxy, say): the
    page would refuse it on every visit, however often the cookie is renewed.
    """
    request.environ.pop("HTTP_AUTHORIZATION", None)


def signed_in(principal: Principal | None = None) -> PageUser:
    """The signed-in user, or ``LoginNeeded`` (which the error handler turns into a redirect).

    Authenticating a form post also checks its CSRF token and origin (SPEC §5).
    """
    if principal is None:
        try:
            principal = authenticate()
        except InvalidToken:
            raise LoginNeeded() from None
    user = db.session.get(User, principal.user_id)
    if user is None or user.disabled:
        raise LoginNeeded()
    return PageUser(user.username, principal)


def local_path(target: str | None, default: str = _DEFAULT_PAGE) -> str:
    """``target`` if it is a path on this site, else ``default``: no open redirects."""
    if (not target or not target.startswith("/") or target.startswith(("//", "/\\"))
            or any(ch <= " " or ch in "\x7f\\" for ch in target)):  # werkzeug strips tabs
        return default
    return target


def to_login(notice: str | None = None, *, clear: bool = True) -> Response:
    """Redirect to the login page (with a notice code), dropping the session cookies."""
    query = f"?{urlencode({'n': notice})}" if notice else ""
    response = redirect(url_for("web.login") + query, code=303)
    if clear:
        clear_session_cookies(response)
    return response


def csrf_value() -> str:
    """The CSRF cookie's value, made now (and set by ``_set_new_csrf``) when there is none."""
    if "web_csrf" not in g:
        current = request.cookies.get(cookie_names(state.settings().cookie_secure).csrf)
        g.web_csrf = current or secrets.token_urlsafe(32)
        g.web_csrf_is_new = current is None
    return str(g.web_csrf)


@bp.after_request
def _set_new_csrf(response: Response) -> Response:
    """A page that made a CSRF value (e.g. the first login form) sets its cookie."""
    if g.get("web_csrf_is_new") and not _sets_cookie(response, "csrf"):
        s = state.settings()
        put_cookie(response, "csrf", g.web_csrf, max_age=int(s.session_max_age.total_seconds()),
                   secure=s.cookie_secure)
    return response


def mark_resumed(response: Response) -> Response:
    """Mark a silent refresh just done, so that a page still refused goes to the login page."""
    put_cookie(response, "resumed", "1", max_age=_RESUMED_MAX_AGE,
               secure=state.settings().cookie_secure)
    return response


def drop_resumed(response: Response) -> Response:
    drop_cookie(response, "resumed", secure=state.settings().cookie_secure)
    return response


@bp.after_request
def _resume_worked(response: Response) -> Response:
    """A page that authenticated after a silent refresh ends its mark."""
    if (g.get("tessera_principal") is not None and not _sets_cookie(response, "resumed")
            and request.cookies.get(cookie_names(state.settings().cookie_secure).resumed)):
        drop_resumed(response)
    return response


def _sets_cookie(response: Response, which: str) -> bool:
    name = getattr(cookie_names(state.settings().cookie_secure), which)
    return any(value.startswith(f"{name}=") for value in response.headers.getlist("Set-Cookie"))


def form(schema: Schema, *fields: str) -> dict[str, Any]:
    """Load the form's ``fields`` with the JSON API's schema (same bounds, same errors)."""
    loaded: dict[str, Any] = schema.load({name: request.form.get(name, "") for name in fields})
    return loaded


def page(template: str, *, me: PageUser | None = None, notice: Notice | None = None,
         status: int = 200, **context: Any) -> tuple[str, int]:
    """Render ``template`` with what every page needs."""
    if notice is None:
        notice = NOTICES.get(request.args.get("n", ""))
    return render_template(template, me=me, csrf=csrf_value(), notice=notice,
                           **context), status
