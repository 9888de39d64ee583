"""The steps of logging in and out, shared by the JSON API and the web pages.

Each step checks, audits and counts exactly once here; the JSON views and the
pages only differ in how they answer (a JSON body or a page and a redirect).
Failures raise the errors of ``app.errors``. This module issues the tokens of
a started session and rotates refresh tokens; the login steps live in
``login_flows`` and the account flows in ``account_flows`` (re-exported here).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from werkzeug.wrappers import Response

from .. import state
from ..accounts import principal_user
from ..core import sessions as session_service
from ..errors import InvalidToken, Unauthorized
from ..extensions import db
from ..metrics import metrics
from ..models import AuthSession
from ..security import Principal
from ..security.issuing import access_token_for, session_limits
from ..security.principal import LEGACY_EXCHANGE_CLIENT
from ..security.revocation import claim_access_token, publish_claim, revoke_session
from .account_flows import (
    change_password,
    check_current_password,
    end_own_session,
    log_out,
    log_out_by_refresh_token,
    log_out_everywhere,
)
from .cookies import set_session_cookies
from .flow_base import (
    BAD_CODE,
    LOGIN_FAILED,
    SESSION_ENDED,
    WRONG_PASSWORD,
    StartedSession,
    kek,
    pending,
    record,
    start_session,
)
from .login_flows import (
    MfaNeeded,
    PasswordChangeNeeded,
    complete_mfa_login,
    complete_password_change,
    password_login,
)

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


def issue_tokens(started: StartedSession, *,
                 asymmetric: bool = False) -> tuple[str, dict[str, Any]]:
    """Mint the session's access token (unless the flow did) and commit it with its audit
    row and whatever the flow left uncommitted: one commit; the caller then sets the
    cookies with ``set_cookies``."""
    token, claims = started.access or access_token_for(started.user, started.session,
                                                       asymmetric=asymmetric)
    if started.checked_at is not None:
        _confirm_new_session(started)
    record("TOKEN_ISSUED", user_id=started.user.id, session_id=started.session.id,
           details={"jti": claims["jti"]})
    return token, claims


def _confirm_new_session(started: StartedSession) -> None:
    assert started.checked_at is not None and isinstance(started.session, AuthSession)
    try:
        session_service.confirm_new_session(db.session(), started.session,
                                            started.refresh_token,
                                            checked_at=started.checked_at,
                                            password_hash=started.password_hash)
    except session_service.LoginOvertaken:
        db.session.rollback()  # no session, no refresh token, no success audit
        record("LOGIN_FAILURE", user_id=started.user.id, result="failure",
               reason="revoked_in_flight")
        raise Unauthorized(LOGIN_FAILED) from None


def set_cookies(response: Response, started: StartedSession, access_token: str) -> None:
    """The access, refresh and CSRF cookies of ``started`` on ``response``."""
    set_session_cookies(response, access_token=access_token,
                        refresh_token=started.refresh_token,
                        session_expires_at=started.expires_at, keep_csrf=started.renewed)


def rotate_refresh(presented: str) -> StartedSession:
    """Consume ``presented`` and hand out its successor; reuse ends the whole session.

    One query reads the token, its session and user; the access token is signed
    next, before any write (its key check must not run under SQLite's write lock);
    then one UPDATE consumes the token and the successor is added. Everything,
    audit rows included, is committed once, by ``issue_tokens``.
    """
    session, now, limits = db.session(), state.now(), session_limits()
    try:
        found = session_service.find_refresh_token(session, presented, now, limits)
        access = access_token_for(found.user, found.session)
        result = session_service.rotate_found(session, found, presented, now, limits)
    except session_service.ReuseDetected as exc:
        _revoke_reused_session(exc.session_id)
        raise Unauthorized(SESSION_ENDED, details={"reason": "refresh_reuse"}) from None
    except session_service.RefreshFailed as exc:
        db.session.rollback()
        record("REFRESH_FAILED", session_id=exc.session_id, result="failure", reason=exc.reason)
        raise Unauthorized(SESSION_ENDED) from None
    pending("TOKEN_REFRESHED", user_id=result.user.id, session_id=result.session.id,
            reason=None if result.rotated else "reuse_grace")  # issue_tokens commits it
    return StartedSession(result.user, result.session, result.refresh_token,
                          result.session.expires_at, renewed=True, access=access)


def _revoke_reused_session(session_id: str | None) -> None:
    db.session.rollback()
    metrics().refresh_reuse.inc()
    sess = db.session.get(AuthSession, session_id) if session_id else None
    if sess is not None:
        revoke_session(sess, reason="refresh_reuse")
    record("REFRESH_REUSE_DETECTED", user_id=sess.user_id if sess else None,
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
        record("TOKEN_INVALID", result="failure", reason="already_exchanged", kid=principal.kid)
        raise InvalidToken("token_revoked")
    started = start_session(user, client_id=LEGACY_EXCHANGE_CLIENT, checked_at=checked_at)
    pending("TOKEN_REVOKED", user_id=user.id, reason="legacy_exchange",
            details={"jti": principal.jti} if principal.jti else None)
    pending("LEGACY_TOKEN_EXCHANGED", user_id=user.id, session_id=started.session.id,
            kid=principal.kid)  # committed with the session it starts
    return started


def finish_exchange(principal: Principal) -> None:
    """After the exchange committed: the legacy token's revocation to Redis."""
    publish_claim(principal)
