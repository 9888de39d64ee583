"""The login page's passkey step as JSON for static/passkeys.js (issue 22).

Its own blueprint, not the pages': a failure here answers the JSON error the
script shows, where the pages' handler would render a page. The login's
mfa_token stays in its HttpOnly cookie (path ``/login/mfa``), which these
routes, under that path, receive; the script never sees it.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from .. import state
from ..auth.flows import PasswordChangeNeeded
from ..errors import InvalidToken
from ..http import load_json
from ..mfa import passkey_flows
from ..mfa.passkey_schemas import (
    PageRedirectSchema,
    PasskeyCredentialSchema,
    PasskeyOptionsSchema,
)
from ..ratelimit import MFA_VERIFY, PASSKEY_OPTIONS
from ..route_facts import route_facts
from ..security import check_csrf
from ..security.cookies import cookie_names
from .sign_in import drop_mfa_challenge, signed_in_response, to_password_change

__all__ = ["bp"]

bp = Blueprint("passkey_pages", __name__)


def _mfa_token() -> str:
    check_csrf()  # the cookie authenticates these posts
    token = request.cookies.get(cookie_names(state.settings().cookie_secure).mfa)
    if not token:
        raise InvalidToken("missing_token", "This login attempt has ended; log in again.")
    return token


def _as_json(redirect: BaseResponse) -> Response:
    """The page flow's redirect as JSON: where to go, with the same cookies set."""
    response = jsonify(redirect=redirect.location)
    for cookie in redirect.headers.getlist("Set-Cookie"):
        response.headers.add("Set-Cookie", cookie)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/login/mfa/passkey/options")
# public: the login's mfa_token is an HttpOnly cookie, not a bearer token
@route_facts(response=PasskeyOptionsSchema, public=True, limits=(PASSKEY_OPTIONS,))
def login_options() -> Response:
    """Options for the login page's passkey prompt, bound to the login's mfa_token cookie."""
    response = jsonify(publicKey=passkey_flows.begin_login(_mfa_token()))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/login/mfa/passkey")
@route_facts(body=PasskeyCredentialSchema, response=PageRedirectSchema, public=True,
             limits=(MFA_VERIFY,), limited_in_view=True)
def login() -> Response:
    """The passkey's answer ends the login page's second step; JSON says where to go."""
    token = _mfa_token()
    credential = load_json(PasskeyCredentialSchema())["credential"]
    outcome = passkey_flows.complete_login(token, credential)
    if isinstance(outcome, PasswordChangeNeeded):
        return _as_json(drop_mfa_challenge(to_password_change(outcome)))
    return _as_json(drop_mfa_challenge(signed_in_response(outcome, url_for("web.account"))))
