"""What the login, MFA and account flows share (neutral ground: no flow imports another).

The key-encryption key, the signed-in principal's user and live session,
whether a user has a second factor, and the current-password check that
guards a change needing it.
"""

from __future__ import annotations

from . import state
from .audit import audit
from .core import mfa as mfa_service
from .core import passkey_store
from .core import sessions as session_service
from .core import users as user_service
from .errors import BAD_CODE, Forbidden, TesseraError, Unauthorized
from .extensions import db
from .models import AuthSession, User
from .ratelimit import limit
from .security import Principal
from .security.issuing import session_limits

__all__ = ["BAD_CODE", "WRONG_PASSWORD", "check_current_password", "has_second_factor", "kek",
           "live_session", "principal_user"]

WRONG_PASSWORD = "The current password is wrong."


def kek() -> bytes:
    """The key-encryption key (always set once the app has started)."""
    value = state.settings().key_encryption_key
    assert value is not None
    return value


def principal_user(principal: Principal, missing: TesseraError | None = None) -> User:
    """The principal's user row, or ``missing`` raised (default 401) when it is gone."""
    user = db.session.get(User, principal.user_id)
    if user is None:
        raise missing if missing is not None else Unauthorized()
    return user


def live_session(principal: Principal, user: User) -> AuthSession:
    """The principal's session, if it is ``user``'s and still live; else 401 (a step-up,
    by code or passkey, needs one to raise)."""
    sess = db.session.get(AuthSession, principal.session_id) if principal.session_id else None
    if sess is None or sess.user_id != user.id or not session_service.is_live(
            sess, state.now(), session_limits()):
        raise Unauthorized("Step-up needs a live session; log in again.")
    return sess


def has_second_factor(user_id: int) -> bool:
    """A confirmed TOTP credential or at least one passkey."""
    return (mfa_service.is_enabled(db.session(), user_id)
            or passkey_store.has_passkeys(db.session(), user_id))


def check_current_password(principal: Principal, user: User, password: str, *,
                           failure: tuple[str, str]) -> None:
    """The signed-in user's password, before a change that needs it (a new password,
    turning MFA on); a wrong one is audited as ``failure`` (event, reason), then 403.

    Every such check counts against RATELIMIT_LOGIN_PER_USERNAME on one counter
    per user id, so a stolen session cannot guess the password faster than a
    login could, whichever change it tries.
    """
    with limit(state.settings().ratelimit_login_per_username, f"user:{user.id}",
               "password-change"):
        if user_service.check_credentials(db.session(), user.username, password) is None:
            event, reason = failure
            audit(event, user_id=user.id, session_id=principal.session_id,
                  result="failure", reason=reason)
            raise Forbidden(WRONG_PASSWORD)
