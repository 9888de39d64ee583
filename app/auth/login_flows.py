"""The login steps before a session exists: the password, the MFA code, and the forced
change of a temporary password (SPEC §5, §7). Each ends in a ``StartedSession``
(committed by ``flows.issue_tokens``) or in the next step's token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .. import state
from ..core import mfa as mfa_service
from ..core import users as user_service
from ..core.tokens import TokenRejected
from ..errors import InvalidToken, Unauthorized, ValidationFailed
from ..extensions import db
from ..metrics import metrics
from ..models import User
from ..ratelimit import limit
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
from ..security.step_token import spend_step_token, step_token_spent
from .flow_base import BAD_CODE, LOGIN_FAILED, StartedSession, kek, pending, record, start_session

__all__ = [
    "MfaNeeded",
    "PasswordChangeNeeded",
    "complete_mfa_login",
    "complete_password_change",
    "password_login",
]


@dataclass(frozen=True)
class MfaNeeded:
    """The password was right; the second step needs this ``mfa_token``."""

    mfa_token: str


@dataclass(frozen=True)
class PasswordChangeNeeded:
    """The password was a temporary one: the login ends in a forced change, with this
    ``password_change_token`` (good only for ``POST /auth/password/temporary``)."""

    password_change_token: str


def password_login(username: str,
                   password: str) -> StartedSession | MfaNeeded | PasswordChangeNeeded:
    """The password step; users with MFA get a challenge instead of a session (SPEC §7),
    and a temporary password leads to a forced change instead of a session."""
    checked_at = state.now()
    checked = user_service.check_credentials(db.session(), username, password)
    if checked is None:
        metrics().logins.labels("failure").inc()
        record("LOGIN_FAILURE", result="failure", reason="bad_credentials",
               details={"username": username[:64]})
        raise Unauthorized(LOGIN_FAILED)
    user = checked.user
    if checked.mfa_enabled:
        metrics().logins.labels("mfa_required").inc()
        record("LOGIN_SUCCESS", user_id=user.id, reason="mfa_required")
        return MfaNeeded(issue_mfa_token(user))
    if user.must_change_password:
        return _password_change_needed(user, ["pwd"])
    started = start_session(user, checked_at=checked_at, password_hash=user.password_hash)
    metrics().logins.labels("success").inc()
    pending("LOGIN_SUCCESS", user_id=user.id, session_id=started.session.id)
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
            record("MFA_FAILURE", user_id=challenge.user_id, result="failure",
                   reason="login_bad_code")
            if failures_since(challenge.user_id, issued) >= MAX_FAILURES:
                _spend(challenge)
            raise Unauthorized(BAD_CODE)
    _spend(challenge)  # single use
    if user.must_change_password:
        record("MFA_SUCCESS", user_id=user.id, reason=f"login_{method}")
        return _password_change_needed(user, ["pwd", "otp"])
    started = start_session(user, acr="aal2", amr=["pwd", "otp"], checked_at=issued)
    pending("MFA_SUCCESS", user_id=user.id, session_id=started.session.id,
            reason=f"login_{method}")  # issue_tokens commits
    return started


def _password_change_needed(user: User, amr: list[str]) -> PasswordChangeNeeded:
    metrics().logins.labels("password_change_required").inc()
    record("LOGIN_SUCCESS", user_id=user.id, reason="password_change_required")
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
    record("PASSWORD_CHANGED", user_id=user.id, reason="temporary_replaced")
    started = start_session(user, acr=challenge.acr, amr=challenge.amr)
    metrics().logins.labels("success").inc()
    pending("LOGIN_SUCCESS", user_id=user.id, session_id=started.session.id)
    return started


def _challenge_spent(challenge: MfaChallenge, issued: datetime) -> bool:
    return (step_token_spent(challenge.jti)
            or failures_since(challenge.user_id, issued) >= MAX_FAILURES)


def _spend(challenge: MfaChallenge) -> None:
    spend_step_token(challenge.jti, challenge.exp, "mfa_token_spent")
