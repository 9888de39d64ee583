"""Login, refresh, logout, sessions, password change, legacy exchange (SPEC §4, §5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from app import state
from app.audit import audit
from app.auth.cookies import clear_session_cookies, set_session_cookies
from app.auth.schemas import LoginSchema, MfaVerifySchema, PasswordChangeSchema, RegisterSchema
from app.core import mfa as mfa_service
from app.core import sessions as session_service
from app.core import users as user_service
from app.errors import Forbidden, InvalidToken, NotFound, Unauthorized, ValidationFailed
from app.extensions import db
from app.http import load_json
from app.metrics import metrics
from app.models import AuthSession, User
from app.ratelimit import limit
from app.security import authenticate, check_csrf, current_principal
from app.security.cookies import cookie_names
from app.security.guards import require_auth
from app.security.issuing import access_token_for, session_limits
from app.core.tokens import TokenRejected
from app.security.mfa_token import (
    MAX_FAILURES,
    MfaChallenge,
    failures_since,
    issue_mfa_token,
    read_mfa_token,
)
from app.security.revocation import (
    revocations,
    revoke_access_token,
    revoke_session,
    revoke_user_tokens,
)

bp = Blueprint("auth", __name__, url_prefix="/auth")

_LOGIN_FAILED = "Wrong username or password."


def _client() -> dict[str, str]:
    return {"user_agent": request.headers.get("User-Agent", ""), "ip": request.remote_addr or ""}


def session_response(user: User, sess: AuthSession, refresh_token: str, *, status: int = 200,
                     asymmetric: bool = False) -> Response:
    """Access token in the body and as a cookie; refresh and CSRF tokens only as cookies."""
    token, claims = access_token_for(user, sess, asymmetric=asymmetric)
    response = jsonify(access_token=token, token_type="Bearer",
                       expires_in=claims["exp"] - claims["iat"], session_id=sess.id)
    response.status_code = status
    set_session_cookies(response, access_token=token, refresh_token=refresh_token,
                        session_expires_at=sess.expires_at)
    audit("TOKEN_ISSUED", user_id=user.id, session_id=sess.id, details={"jti": claims["jti"]})
    return response


def start_session(user: User, *, acr: str = "aal1", amr: list[str] | None = None,
                  client_id: str = "web") -> tuple[AuthSession, str]:
    """A new session for ``user`` from this request's client."""
    return session_service.new_session(
        db.session, user, now=state.now(), limits=session_limits(), client_id=client_id,
        acr=acr, amr=amr, **_client(),
    )


@bp.post("/login")
def login() -> Response:
    """Password step; users with MFA get an ``mfa_token`` instead of a session (SPEC §7)."""
    body = load_json(LoginSchema())
    user = user_service.check_credentials(db.session, body["username"], body["password"])
    if user is None:
        metrics().logins.labels("failure").inc()
        audit("LOGIN_FAILURE", result="failure", reason="bad_credentials",
              details={"username": body["username"][:64]})
        raise Unauthorized(_LOGIN_FAILED)
    if mfa_service.is_enabled(db.session, user.id):
        metrics().logins.labels("mfa_required").inc()
        token = issue_mfa_token(user)
        audit("LOGIN_SUCCESS", user_id=user.id, reason="mfa_required")
        response = jsonify(mfa_required=True, mfa_token=token)
        response.headers["Cache-Control"] = "no-store"
        return response
    sess, refresh_token = start_session(user)
    metrics().logins.labels("success").inc()
    audit("LOGIN_SUCCESS", user_id=user.id, session_id=sess.id, commit=False)  # with the next
    return session_response(user, sess, refresh_token)


@bp.post("/mfa/verify")
def mfa_verify() -> Response:
    """Second step of a login with MFA: the mfa_token and a TOTP or recovery code."""
    body = load_json(MfaVerifySchema())
    try:
        challenge = read_mfa_token(body["mfa_token"])
    except TokenRejected as exc:
        raise InvalidToken(exc.reason) from None
    issued = datetime.fromtimestamp(challenge.auth_time, UTC)
    with limit(state.settings().ratelimit_mfa, f"user:{challenge.user_id}", "mfa-user"):
        return _complete_mfa_login(challenge, issued, body["code"])


def _complete_mfa_login(challenge: MfaChallenge, issued: datetime, code: str) -> Response:
    if _challenge_spent(challenge, issued):
        raise InvalidToken("mfa_token_spent", "This login attempt has ended; log in again.")
    user = db.session.get(User, challenge.user_id)
    method = None if user is None or user.disabled else mfa_service.verify_second_factor(
        db.session, _kek(), challenge.user_id, code, state.now())
    if user is None or method is None:
        audit("MFA_FAILURE", user_id=challenge.user_id, result="failure",
              reason="login_bad_code")
        if failures_since(challenge.user_id, issued) >= MAX_FAILURES:
            _spend(challenge)
        raise Unauthorized("The code is wrong or was already used.")
    _spend(challenge)  # single use
    sess, refresh_token = start_session(user, acr="aal2", amr=["pwd", "otp"])
    audit("MFA_SUCCESS", user_id=user.id, session_id=sess.id, reason=f"login_{method}")
    return session_response(user, sess, refresh_token)


def _kek() -> bytes:
    kek = state.settings().key_encryption_key
    assert kek is not None
    return kek


def _challenge_spent(challenge: MfaChallenge, issued: datetime) -> bool:
    spent = revocations().check(jti=challenge.jti, sid=None, user_id=None, iat=None,
                                token_hash=None, now=state.now())
    return spent is not None or failures_since(challenge.user_id, issued) >= MAX_FAILURES


def _spend(challenge: MfaChallenge) -> None:
    expires = datetime.fromtimestamp(challenge.exp, UTC) + timedelta(seconds=60)
    revocations().revoke_jti(challenge.jti, expires, state.now(), "mfa_token_spent")


@bp.post("/register")
def register() -> Response:
    """Self-registration, only when REGISTRATION_ENABLED is on."""
    if not state.settings().registration_enabled:
        raise NotFound()
    body = load_json(RegisterSchema())
    try:
        user = user_service.create_user(db.session, body["username"], body["password"], (),
                                        state.now())
    except user_service.UsernameTaken:
        raise ValidationFailed(details={"username": ["This username is taken."]}) from None
    except user_service.UserError as exc:
        field = "password" if isinstance(exc, user_service.WeakPassword) else "username"
        raise ValidationFailed(details={field: [str(exc)]}) from None
    audit("USER_CREATED", user_id=user.id, actor_id=user.id)
    response = jsonify(id=user.id, username=user.username)
    response.status_code = 201
    return response


@bp.post("/refresh")
def refresh() -> Response:
    """Rotate the refresh cookie and return a fresh access token (SPEC §5)."""
    names = cookie_names(state.settings().cookie_secure)
    presented = request.cookies.get(names.refresh)
    if not presented:
        raise Unauthorized("No refresh token.")
    check_csrf()  # the refresh cookie authenticates this state-changing request
    try:
        result = session_service.rotate_refresh_token(db.session, presented, state.now(),
                                                      session_limits())
    except session_service.ReuseDetected as exc:
        _revoke_reused_session(exc.session_id)
        raise Unauthorized("This session has ended; please log in again.") from None
    except session_service.RefreshFailed as exc:
        db.session.rollback()
        audit("REFRESH_FAILED", session_id=exc.session_id, result="failure", reason=exc.reason)
        raise Unauthorized("This session has ended; please log in again.") from None
    audit("TOKEN_REFRESHED", user_id=result.user.id, session_id=result.session.id,
          reason=None if result.rotated else "reuse_grace")
    return session_response(result.user, result.session, result.refresh_token)


def _revoke_reused_session(session_id: str | None) -> None:
    db.session.rollback()
    metrics().refresh_reuse.inc()
    sess = db.session.get(AuthSession, session_id) if session_id else None
    if sess is not None:
        revoke_session(sess, reason="refresh_reuse")
    audit("REFRESH_REUSE_DETECTED", user_id=sess.user_id if sess else None,
          session_id=session_id, result="failure", reason="consumed_token_reused")


@bp.post("/logout")
@require_auth
def logout() -> Response:
    """End the current session and its access tokens; clear the cookies."""
    principal = current_principal()
    revoke_access_token(principal, reason="logout")
    if principal.session_id:
        sess = db.session.get(AuthSession, principal.session_id)
        if sess is not None:
            revoke_session(sess, reason="logout")
    response = jsonify(logged_out=True)
    clear_session_cookies(response)
    return response


@bp.post("/logout-all")
@require_auth
def logout_all() -> Response:
    """End every session and token of the current user."""
    principal = current_principal()
    revoke_user_tokens(principal.user_id, reason="logout_all", actor_id=principal.user_id)
    response = jsonify(logged_out=True)
    clear_session_cookies(response)
    return response


def _session_json(sess: AuthSession, current_id: str | None) -> dict[str, Any]:
    return {
        "id": sess.id, "client_id": sess.client_id, "created_at": sess.created_at.isoformat(),
        "last_used_at": sess.last_used_at.isoformat(), "expires_at": sess.expires_at.isoformat(),
        "user_agent": sess.user_agent, "ip": sess.ip, "acr": sess.acr,
        "current": sess.id == current_id,
    }


@bp.get("/sessions")
@require_auth
def list_sessions() -> Response:
    """The caller's live sessions, the current one marked."""
    principal = current_principal()
    rows = session_service.live_sessions(db.session, principal.user_id, state.now(),
                                         session_limits())
    return jsonify(sessions=[_session_json(s, principal.session_id) for s in rows])


@bp.delete("/sessions/<session_id>")
@require_auth
def end_session(session_id: str) -> Response:
    """End one of the caller's own sessions (another user's is 404)."""
    principal = current_principal()
    sess = db.session.get(AuthSession, session_id)
    if sess is None or sess.user_id != principal.user_id or sess.revoked_at is not None:
        raise NotFound("No such session.")
    revoke_session(sess, reason="user_ended")
    return jsonify(ended=session_id)


@bp.post("/password")
@require_auth
def change_password() -> Response:
    """Change the password (current one required); every other session ends."""
    principal = current_principal()
    body = load_json(PasswordChangeSchema())
    user = db.session.get(User, principal.user_id)
    if user is None or user_service.check_credentials(
            db.session, user.username, body["current_password"]) is None:
        raise Forbidden("The current password is wrong.")
    try:
        user_service.change_password(db.session, user, body["new_password"], state.now())
    except user_service.WeakPassword as exc:
        raise ValidationFailed(details={"new_password": [str(exc)]}) from None
    for sess in session_service.live_sessions(db.session, user.id, state.now(), session_limits()):
        if sess.id != principal.session_id:
            revoke_session(sess, reason="password_changed")
    audit("PASSWORD_CHANGED", user_id=user.id)
    return jsonify(changed=True)


@bp.post("/token/exchange")
def exchange() -> Response:
    """Trade a valid legacy HS256 bearer token for an ES256 session (SPEC §4)."""
    if not request.headers.get("Authorization"):
        raise InvalidToken("missing_token", "A legacy bearer token is required.")
    principal = authenticate()
    if not principal.legacy:
        raise Forbidden("Only legacy HS256 tokens can be exchanged.")
    user = db.session.get(User, principal.user_id)
    if user is None:
        raise InvalidToken("unknown_subject")
    revoke_access_token(principal, reason="legacy_exchange")
    sess, refresh_token = start_session(user, client_id="legacy-exchange")
    audit("LEGACY_TOKEN_EXCHANGED", user_id=user.id, session_id=sess.id, kid=principal.kid)
    return session_response(user, sess, refresh_token, asymmetric=True)
