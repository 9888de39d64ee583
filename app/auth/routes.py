"""Login, refresh, logout, sessions, password change, legacy exchange (SPEC §4, §5)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from .. import state
from ..audit import audit
from ..core import sessions as session_service
from ..core import users as user_service
from ..core.devices import device_name
from ..errors import Forbidden, InvalidToken, NotFound, Unauthorized
from ..extensions import db
from ..http import load_json
from ..models import AuthSession
from ..ratelimit import EXCHANGE, LOGIN_PER_IP, LOGIN_PER_USERNAME, MFA_VERIFY, REFRESH, REGISTER
from ..route_facts import route_facts
from ..security import authenticate, check_csrf, current_principal
from ..security.cookies import cookie_names
from ..security.guards import require_auth
from ..security.issuing import session_limits
from . import flows
from .cookies import clear_session_cookies
from .schemas import (
    EndedSchema,
    LoggedOutSchema,
    LoginSchema,
    MfaRequiredSchema,
    MfaVerifySchema,
    OwnSessionsSchema,
    PasswordChangedSchema,
    PasswordChangeRequiredSchema,
    PasswordChangeSchema,
    RegisteredSchema,
    RegisterSchema,
    ReplaceTemporaryPasswordSchema,
    SessionIssuedSchema,
)

bp = Blueprint("auth", __name__, url_prefix="/auth")


def session_response(started: flows.StartedSession, *, asymmetric: bool = False) -> Response:
    """Access token in the body and as a cookie; refresh and CSRF tokens only as cookies."""
    token, claims = flows.issue_tokens(started, asymmetric=asymmetric)
    response = jsonify(access_token=token, token_type="Bearer",
                       expires_in=claims["exp"] - claims["iat"], session_id=claims["sid"])
    flows.set_cookies(response, started, token)
    return response


@bp.post("/login")
@route_facts(
    body=LoginSchema,
    response=(SessionIssuedSchema, MfaRequiredSchema, PasswordChangeRequiredSchema),
    public=True,
    limits=(LOGIN_PER_IP, LOGIN_PER_USERNAME),
    gives_back=True,
)
def login() -> Response:
    """Password step; users with MFA get an ``mfa_token`` instead of a session (SPEC §7)."""
    body = load_json(LoginSchema())
    outcome = flows.password_login(body["username"], body["password"])
    if isinstance(outcome, flows.MfaNeeded):
        response = jsonify(mfa_required=True, mfa_token=outcome.mfa_token)
        response.headers["Cache-Control"] = "no-store"
        return response
    if isinstance(outcome, flows.PasswordChangeNeeded):
        return password_change_response(outcome)
    return session_response(outcome)


def password_change_response(outcome: flows.PasswordChangeNeeded) -> Response:
    """A temporary password: no session yet, only a token for POST /auth/password/temporary."""
    response = jsonify(password_change_required=True,
                       password_change_token=outcome.password_change_token)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/mfa/verify")
@route_facts(
    body=MfaVerifySchema,
    response=(SessionIssuedSchema, PasswordChangeRequiredSchema),
    public=True,
    limits=(MFA_VERIFY,),
    limited_in_view=True,
)
def mfa_verify() -> Response:
    """Second step of a login with MFA: the mfa_token and a TOTP or recovery code."""
    body = load_json(MfaVerifySchema())
    outcome = flows.complete_mfa_login(body["mfa_token"], body["code"])
    if isinstance(outcome, flows.PasswordChangeNeeded):
        return password_change_response(outcome)
    return session_response(outcome)


@bp.post("/register")
@route_facts(
    body=RegisterSchema,
    response=RegisteredSchema,
    status=201,
    public=True,
    limits=(REGISTER,),
    # A taken name is a field error here (the form shows it by the field), not a 409.
    field_errors=("username_taken",),
)
def register() -> Response:
    """Self-registration, only when REGISTRATION_ENABLED is on."""
    if not state.settings().registration_enabled:
        raise NotFound()
    body = load_json(RegisterSchema())
    user = user_service.create_user(db.session(), body["username"], body["password"], (),
                                    state.now())
    audit("USER_CREATED", user_id=user.id, actor_id=user.id)
    response = jsonify(id=user.id, username=user.username)
    response.status_code = 201
    return response


@bp.post("/refresh")
@route_facts(response=SessionIssuedSchema, public=True, limits=(REFRESH,))
def refresh() -> Response:
    """Rotate the refresh cookie and return a fresh access token (SPEC §5)."""
    names = cookie_names(state.settings().cookie_secure)
    presented = request.cookies.get(names.refresh)
    if not presented:
        raise Unauthorized("No refresh token.")
    check_csrf()  # the refresh cookie authenticates this state-changing request
    return session_response(flows.rotate_refresh(presented))


@bp.post("/logout")
@route_facts(response=LoggedOutSchema)
@require_auth
def logout() -> Response:
    """End the current session and its access tokens; clear the cookies."""
    flows.log_out(current_principal())
    response = jsonify(logged_out=True)
    clear_session_cookies(response)
    return response


@bp.post("/logout-all")
@route_facts(response=LoggedOutSchema)
@require_auth
def logout_all() -> Response:
    """End every session and token of the current user."""
    flows.log_out_everywhere(current_principal())
    response = jsonify(logged_out=True)
    clear_session_cookies(response)
    return response


def _session_json(sess: AuthSession, current_id: str | None) -> dict[str, Any]:
    return {
        "id": sess.id, "client_id": sess.client_id, "created_at": sess.created_at.isoformat(),
        "last_used_at": sess.last_used_at.isoformat(), "expires_at": sess.expires_at.isoformat(),
        "user_agent": sess.user_agent, "device": device_name(sess.user_agent), "ip": sess.ip,
        "acr": sess.acr, "current": sess.id == current_id,
    }


@bp.get("/sessions")
@route_facts(response=OwnSessionsSchema)
@require_auth
def list_sessions() -> Response:
    """The caller's live sessions, the current one marked."""
    principal = current_principal()
    rows = session_service.live_sessions(db.session(), principal.user_id, state.now(),
                                         session_limits())
    return jsonify(sessions=[_session_json(s, principal.session_id) for s in rows])


@bp.delete("/sessions/<session_id>")
@route_facts(response=EndedSchema)
@require_auth
def end_session(session_id: str) -> Response:
    """End one of the caller's own sessions (another user's is 404)."""
    flows.end_own_session(current_principal(), session_id)
    return jsonify(ended=session_id)


@bp.post("/password")
@route_facts(body=PasswordChangeSchema, response=PasswordChangedSchema)
@require_auth
def change_password() -> Response:
    """Change the password (current one required); every other session ends."""
    body = load_json(PasswordChangeSchema())
    flows.change_password(current_principal(), body["current_password"], body["new_password"])
    return jsonify(changed=True)


@bp.post("/password/temporary")
@route_facts(body=ReplaceTemporaryPasswordSchema, response=SessionIssuedSchema, public=True)
def replace_temporary_password() -> Response:
    """Replace a temporary password (the login's ``password_change_token``); opens the session."""
    body = load_json(ReplaceTemporaryPasswordSchema())
    return session_response(flows.complete_password_change(body["password_change_token"],
                                                           body["new_password"]))


@bp.post("/token/exchange")
@route_facts(response=SessionIssuedSchema, limits=(EXCHANGE,))
def exchange() -> Response:
    """Trade a valid legacy HS256 bearer token for an ES256 session (SPEC §4)."""
    if not request.headers.get("Authorization"):
        raise InvalidToken("missing_token", "A legacy bearer token is required.")
    checked_at = state.now()
    principal = authenticate()
    if not principal.legacy:
        raise Forbidden("Only legacy HS256 tokens can be exchanged.")
    response = session_response(flows.exchange_legacy_token(principal, checked_at),
                                asymmetric=True)
    flows.finish_exchange(principal)
    return response
