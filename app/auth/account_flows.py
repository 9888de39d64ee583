"""Flows of a signed-in user on their own account: logging out (one session, by refresh
cookie, everywhere), ending a session, and changing the password."""

from __future__ import annotations

from flask import request

from .. import state
from ..accounts import WRONG_PASSWORD, check_current_password, principal_user
from ..core import sessions as session_service
from ..core import users as user_service
from ..errors import Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..models import AuthSession
from ..security import Principal
from ..security.cookies import cookie_names
from ..security.issuing import session_limits
from ..security.revocation import (
    end_legacy_tokens,
    revoke_access_token,
    revoke_session,
    revoke_user_tokens,
)
from .flow_base import record

__all__ = [
    "change_password",
    "check_current_password",
    "end_own_session",
    "log_out",
    "log_out_by_refresh_token",
    "log_out_everywhere",
]


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
    db.session.commit()  # the audit rows of the revocations above


def log_out_by_refresh_token(presented: str) -> None:
    """End the session whose current refresh token is ``presented`` (its access token has
    expired: the web page's log-out)."""
    sess = session_service.session_of_refresh_token(db.session(), presented)
    if sess is not None and sess.revoked_at is None:
        revoke_session(sess, reason="logout")
        db.session.commit()


def log_out_everywhere(principal: Principal) -> None:
    """End every session and token of the caller."""
    revoke_user_tokens(principal.user_id, reason="logout_all", actor_id=principal.user_id)
    db.session.commit()


def end_own_session(principal: Principal, session_id: str) -> None:
    """End one of the caller's sessions; another user's is reported as missing."""
    sess = db.session.get(AuthSession, session_id)
    if sess is None or sess.user_id != principal.user_id or sess.revoked_at is not None:
        raise NotFound("No such session.")
    revoke_session(sess, reason="user_ended")
    db.session.commit()


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
    record("PASSWORD_CHANGED", user_id=user.id)
