"""How a login step ends on the pages: the signed-in redirect with its cookies, the way
on to a forced password change, and the step cookies dropped.

Shared by the login pages (``web.login``) and the login page's passkey step
(``web.passkeys``), which answers the same redirect as JSON.
"""

from __future__ import annotations

from flask import redirect, url_for
from werkzeug.wrappers import Response

from .. import state
from ..auth import flows
from ..security.cookies import drop_cookie, put_cookie

__all__ = [
    "drop_mfa_challenge",
    "drop_password_challenge",
    "signed_in_response",
    "to_password_change",
]


def signed_in_response(started: flows.StartedSession, target: str) -> Response:
    """A redirect to ``target`` that carries the new session's cookies."""
    token, _ = flows.issue_tokens(started)
    response = redirect(target, code=303)
    flows.set_cookies(response, started, token)
    return response


def to_password_change(outcome: flows.PasswordChangeNeeded) -> Response:
    """A temporary password: on to the page that replaces it, the token in a scoped cookie."""
    response = redirect(url_for("web.login_password"), code=303)
    s = state.settings()
    put_cookie(response, "password", outcome.password_change_token,
               max_age=int(s.mfa_token_ttl.total_seconds()), secure=s.cookie_secure)
    return response


def drop_password_challenge(response: Response) -> Response:
    """``response`` with the forced-change token's cookie removed."""
    drop_cookie(response, "password", secure=state.settings().cookie_secure)
    return response


def drop_mfa_challenge(response: Response) -> Response:
    """``response`` with the login's mfa_token cookie removed."""
    drop_cookie(response, "mfa", secure=state.settings().cookie_secure)
    return response
