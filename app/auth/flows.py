"""The steps of logging in and out, shared by the JSON API and the web pages.

Each step checks, audits and counts exactly once here; the JSON views and the
pages only differ in how they answer (a JSON body or a page and a redirect).
Failures raise the errors of ``app.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from flask import request
from werkzeug.wrappers import Response

from .. import state
from ..accounts import BAD_CODE, WRONG_PASSWORD, check_current_password, kek, principal_user
from ..audit import audit
from ..core import mfa as mfa_service
from ..core import sessions as session_service
from ..core import users as user_service
from ..core.tokens import TokenRejected
from ..errors import Forbidden, InvalidToken, NotFound, Unauthorized, ValidationFailed
from ..extensions import db
from ..metrics import metrics
from ..models import AuthSession, User
from ..ratelimit import limit
from ..security import Principal
from ..security.cookies import cookie_names
from ..security.issuing import access_token_for, session_limits
from ..security.mfa_token import (
    MAX_FAILURES,
    MfaChallenge,
    failures_since,
    issue_mfa_token,
    read_mfa_token,
)
from ..security.password_token import (
    issue_password_token,
    read_password_token,
    spend_password_token,
)
from ..security.principal import LEGACY_EXCHANGE_CLIENT
from ..security.revocation import (
    claim_access_token,
    end_legacy_tokens,
    publish_claim,
    revoke_access_token,
    revoke_session,
    revoke_user_tokens,
)
from ..security.step_token import spend_step_token, step_token_spent
from .cookies import set_session_cookies

__all__ = [
    "BAD_CODE",
    "LOGIN_FAILED",
    "SESSION_ENDED",
    "MfaNeeded",
    "PasswordChangeNeeded",
    "StartedSession",
    "WRONG_PASSWORD",
    "change_password",
    "check_current_password",
    "complete_mfa_login",
    "complete_password_change",
    "end_own_session",
    "exchange_legacy_token",
    "finish_exchange",
    "issue_tokens",
    "kek",
    "log_out",
    "log_out_by_refresh_token",
    "log_out_everywhere",
    "password_login",
    "rotate_refresh",
    "set_cookies",
    "start_session",
]

LOGIN_FAILED = "Wrong username or password."
SESSION_ENDED = "This session has ended; please log in again."


@dataclass(frozen=True)
class StartedSession:
    """A session just created or refreshed, with its new (raw) refresh token."""

    user: User
    session: AuthSession
    refresh_token: str
    # Read while the row is loaded: after the commit it would cost a query.
    expires_at: datetime
    renewed: bool = False  # a refresh of an existing session, not a login
    # A new session: when its credential was checked, and the password hash it matched
    # (confirm_new_session refuses it if a user revocation overtook the login).
    checked_at: datetime | None = None
    password_hash: str | None = None


@dataclass(frozen=True)
class MfaNeeded:
    """The password was right; the second step needs this ``mfa_token``."""

    mfa_token: str


@dataclass(frozen=True)
class PasswordChangeNeeded:
    """The password was a temporary one: the login ends in a forced change, with this
    ``password_change_token`` (good only for ``POST /auth/password/temporary``)."""

    password_change_token: str


class _ClientInfo(TypedDict):
    user_agent: str
    ip: str


def _client() -> _ClientInfo:
    return {"user_agent": request.headers.get("User-Agent", ""), "ip": request.remote_addr or ""}


def start_session(user: User, *, acr: str = "aal1", amr: list[str] | None = None,
                  client_id: str = "web", checked_at: datetime | None = None,
                  password_hash: str | None = None) -> StartedSession:
    """A new session for ``user`` from this request's client (committed by the audit
    of ``issue_tokens``, in one transaction with it); ``checked_at``: when the
    credential was checked (default now)."""
    now = state.now()
    sess, refresh_token = session_service.new_session(
        db.session(), user, now=now, limits=session_limits(), client_id=client_id,
        acr=acr, amr=amr, **_client(),
    )
    return StartedSession(user, sess, refresh_token, sess.expires_at,
                          checked_at=checked_at or now, password_hash=password_hash)


def issue_tokens(started: StartedSession, *,
                 asymmetric: bool = False) -> tuple[str, dict[str, Any]]:
    """Mint the session's access token and commit it with its audit row (and whatever
    the flow left uncommitted); the caller sets it with ``set_cookies``."""
    token, claims = access_token_for(started.user, started.session, asymmetric=asymmetric)
    if started.checked_at is not None:
        _confirm_new_session(started)
    audit("TOKEN_ISSUED", user_id=started.user.id, session_id=started.session.id,
          details={"jti": claims["jti"]})
    return token, claims


def _confirm_new_session(started: StartedSession) -> None:
    assert started.checked_at is not None
    try:
        session_service.confirm_new_session(db.session(), started.session,
                                            checked_at=started.checked_at,
                                            password_hash=started.password_hash)
    except session_service.LoginOvertaken:
        db.session.rollback()  # no session, no refresh token, no success audit
        audit("LOGIN_FAILURE", user_id=started.user.id, result="failure",
              reason="revoked_in_flight")
        raise Unauthorized(LOGIN_FAILED) from None


def set_cookies(response: Response, started: StartedSession, access_token: str) -> None:
    """The access, refresh and CSRF cookies of ``started`` on ``response``."""
    set_session_cookies(response, access_token=access_token,
                        refresh_token=started.refresh_token,
                        session_expires_at=started.expires_at, keep_csrf=started.renewed)


def password_login(username: str,
                   password: str) -> StartedSession | MfaNeeded | PasswordChangeNeeded:
    """The password step; users with MFA get a challenge instead of a session (SPEC §7),
    and a temporary password leads to a forced change instead of a session."""
    checked_at = state.now()
    checked = user_service.check_credentials(db.session(), username, password)
    if checked is None:
        metrics().logins.labels("failure").inc()
        audit("LOGIN_FAILURE", result="failure", reason="bad_credentials",
              details={"username": username[:64]})
        raise Unauthorized(LOGIN_FAILED)
    user = checked.user
    if checked.mfa_enabled:
        metrics().logins.labels("mfa_required").inc()
        audit("LOGIN_SUCCESS", user_id=user.id, reason="mfa_required")
        return MfaNeeded(issue_mfa_token(user))
    if user.must_change_password:
        return _password_change_needed(user, ["pwd"])
    started = start_session(user, checked_at=checked_at, password_hash=user.password_hash)
    metrics().logins.labels("success").inc()
    audit("LOGIN_SUCCESS", user_id=user.id, session_id=started.session.id, commit=False)
    return started


def complete_mfa_login(mfa_token: str, code: str) -> StartedSession | PasswordChangeNeeded:
    """Second step of a login: the challenge and a TOTP or recovery code."""
    try:
        challenge = read_mfa_token(mfa_token)
    except TokenRejected as exc:
        raise InvalidToken(exc.reason) from None
    issued = datetime.fromtimestamp(challenge.auth_time, UTC)
    with limit(state.settings().ratelimit_mfa, f"user:{challenge.user_id}", "mfa-user"):
        if _challenge_spent(challenge, issued):
            raise InvalidToken("mfa_token_spent", "This login attempt has ended; log in again.")
        user = db.session.get(User, challenge.user_id)
        method = None if user is None or user.disabled else mfa_service.verify_second_factor(
            db.session(), kek(), challenge.user_id, code, state.now())
        if user is None or method is None:
            audit("MFA_FAILURE", user_id=challenge.user_id, result="failure",
                  reason="login_bad_code")
            if failures_since(challenge.user_id, issued) >= MAX_FAILURES:
                _spend(challenge)
            raise Unauthorized(BAD_CODE)
    _spend(challenge)  # single use
    if user.must_change_password:
        audit("MFA_SUCCESS", user_id=user.id, reason=f"login_{method}")
        return _password_change_needed(user, ["pwd", "otp"])
    started = start_session(user, acr="aal2", amr=["pwd", "otp"], checked_at=issued)
    audit("MFA_SUCCESS", user_id=user.id, session_id=started.session.id,
          reason=f"login_{method}", commit=False)  # issue_tokens commits
    return started


def _password_change_needed(user: User, amr: list[str]) -> PasswordChangeNeeded:
    metrics().logins.labels("password_change_required").inc()
    audit("LOGIN_SUCCESS", user_id=user.id, reason="password_change_required")
    return PasswordChangeNeeded(issue_password_token(user, amr))


def complete_password_change(password_change_token: str, new_password: str) -> StartedSession:
    """End a login with a temporary password: set the user's own password, open the session.

    The token proves the login steps passed, so the temporary password is not asked
    again; it is spent on success. A user no longer under a forced change (the token
    was used, or an admin cleared it) is refused like an expired token.
    """
    try:
        challenge = read_password_token(password_change_token)
    except TokenRejected as exc:
        raise InvalidToken(exc.reason, "This login attempt has ended; log in again.") from None
    user = db.session.get(User, challenge.user_id)
    ended = InvalidToken("password_token_spent", "This login attempt has ended; log in again.")
    if user is None or user.disabled or not user.must_change_password:
        raise ended
    try:
        replaced = user_service.replace_temporary_password(db.session(), user, new_password,
                                                           state.now())
    except user_service.WeakPassword as exc:
        raise ValidationFailed(details={"new_password": [str(exc)]}) from None
    if not replaced:  # a concurrent request with the same token won
        raise ended
    db.session.refresh(user)
    spend_password_token(challenge)
    audit("PASSWORD_CHANGED", user_id=user.id, reason="temporary_replaced")
    started = start_session(user, acr=challenge.acr, amr=challenge.amr)
    metrics().logins.labels("success").inc()
    audit("LOGIN_SUCCESS", user_id=user.id, session_id=started.session.id, commit=False)
    return started


def _challenge_spent(challenge: MfaChallenge, issued: datetime) -> bool:
    return (step_token_spent(challenge.jti)
            or failures_since(challenge.user_id, issued) >= MAX_FAILURES)


def _spend(challenge: MfaChallenge) -> None:
    spend_step_token(challenge.jti, challenge.exp, "mfa_token_spent")


def rotate_refresh(presented: str) -> StartedSession:
    """Consume ``presented`` and hand out its successor; reuse ends the whole session."""
    try:
        result = session_service.rotate_refresh_token(db.session(), presented, state.now(),
                                                      session_limits())
    except session_service.ReuseDetected as exc:
        _revoke_reused_session(exc.session_id)
        raise Unauthorized(SESSION_ENDED, details={"reason": "refresh_reuse"}) from None
    except session_service.RefreshFailed as exc:
        db.session.rollback()
        audit("REFRESH_FAILED", session_id=exc.session_id, result="failure", reason=exc.reason)
        raise Unauthorized(SESSION_ENDED) from None
    audit("TOKEN_REFRESHED", user_id=result.user.id, session_id=result.session.id,
          reason=None if result.rotated else "reuse_grace", commit=False)  # issue_tokens commits
    return StartedSession(result.user, result.session, result.refresh_token,
                          result.session.expires_at, renewed=True)


def _revoke_reused_session(session_id: str | None) -> None:
    db.session.rollback()
    metrics().refresh_reuse.inc()
    sess = db.session.get(AuthSession, session_id) if session_id else None
    if sess is not None:
        revoke_session(sess, reason="refresh_reuse")
    audit("REFRESH_REUSE_DETECTED", user_id=sess.user_id if sess else None,
          session_id=session_id, result="failure", reason="consumed_token_reused")


def exchange_legacy_token(principal: Principal, checked_at: datetime) -> StartedSession:
    """Trade a legacy token for a new session, once (SPEC §4).

    The token's revocation row is inserted first, in the transaction that then
    makes the session and its audit rows (``issue_tokens`` commits them all): of
    concurrent exchanges of one token, the one whose insert lands wins, and every
    other finds the row, rolls back and makes nothing. The caller publishes the
    revocation to Redis (``finish_exchange``) after the commit.
    """
    user = principal_user(principal, InvalidToken("unknown_subject"))
    if not claim_access_token(principal, reason="legacy_exchange"):
        db.session.rollback()
        audit("TOKEN_INVALID", result="failure", reason="already_exchanged", kid=principal.kid)
        raise InvalidToken("token_revoked")
    started = start_session(user, client_id=LEGACY_EXCHANGE_CLIENT, checked_at=checked_at)
    audit("TOKEN_REVOKED", user_id=user.id, reason="legacy_exchange",
          details={"jti": principal.jti} if principal.jti else None, commit=False)
    audit("LEGACY_TOKEN_EXCHANGED", user_id=user.id, session_id=started.session.id,
          kid=principal.kid, commit=False)  # committed with the session it starts
    return started


def finish_exchange(principal: Principal) -> None:
    """After the exchange committed: the legacy token's revocation to Redis."""
    publish_claim(principal)


def log_out(principal: Principal) -> None:
    """End the caller's session and its access token.

    An HS256 token names no session (its ``sid`` grants nothing), so for one the
    session ended is the one whose refresh cookie the request carries, if it is
    the same user's: a browser logged in during phase ``legacy`` still logs out.
    """
    revoke_access_token(principal, reason="logout")
    sess = db.session.get(AuthSession, principal.session_id) if principal.session_id else None
    if sess is None and principal.legacy:
        names = cookie_names(state.settings().cookie_secure)
        presented = request.cookies.get(names.refresh)
        found = session_service.session_of_refresh_token(db.session(), presented) \
            if presented else None
        sess = found if found is not None and found.user_id == principal.user_id else None
    if sess is not None and sess.revoked_at is None:
        revoke_session(sess, reason="logout")


def log_out_by_refresh_token(presented: str) -> None:
    """End the session whose current refresh token is ``presented`` (its access token has
    expired: the web page's log-out)."""
    sess = session_service.session_of_refresh_token(db.session(), presented)
    if sess is not None and sess.revoked_at is None:
        revoke_session(sess, reason="logout")


def log_out_everywhere(principal: Principal) -> None:
    """End every session and token of the caller."""
    revoke_user_tokens(principal.user_id, reason="logout_all", actor_id=principal.user_id)


def end_own_session(principal: Principal, session_id: str) -> None:
    """End one of the caller's sessions; another user's is reported as missing."""
    sess = db.session.get(AuthSession, session_id)
    if sess is None or sess.user_id != principal.user_id or sess.revoked_at is not None:
        raise NotFound("No such session.")
    revoke_session(sess, reason="user_ended")


def change_password(principal: Principal, current_password: str, new_password: str) -> None:
    """Check the current password, set the new one, end every other session."""
    user = principal_user(principal, Forbidden(WRONG_PASSWORD))
    check_current_password(principal, user, current_password,
                           failure=("PASSWORD_CHANGE_FAILED", "bad_current_password"))
    try:
        user_service.change_password(db.session(), user, new_password, state.now())
    except user_service.WeakPassword as exc:
        raise ValidationFailed(details={"new_password": [str(exc)]}) from None
    for sess in session_service.live_sessions(db.session(), user.id, state.now(), session_limits()):
        if sess.id != principal.session_id:
            revoke_session(sess, reason="password_changed")
    # The old system's tokens stood for the old password too (they have no session to end).
    end_legacy_tokens(user.id, reason="password_changed")
    audit("PASSWORD_CHANGED", user_id=user.id)
