"""TOTP enrolment and step-up, shared by the JSON API and the web pages (SPEC §7)."""

from __future__ import annotations

from .. import state
from ..accounts import BAD_CODE, check_current_password, kek, live_session, principal_user
from ..audit import audit
from ..core import mfa as mfa_service
from ..errors import Unauthorized
from ..extensions import db
from ..models import AuthSession, User
from ..ratelimit import limit
from ..security import Principal

__all__ = ["begin_enrollment", "confirm_enrollment", "pending_enrollment", "step_up"]


def begin_enrollment(principal: Principal) -> mfa_service.Enrollment:
    """A new pending secret with its otpauth:// URI and QR code; MFA stays off until confirmed."""
    user = principal_user(principal)
    return mfa_service.begin_enrollment(db.session(), kek(), user.id, user.username,
                                        state.settings().mfa_issuer, state.now())


def pending_enrollment(principal: Principal) -> mfa_service.Enrollment | None:
    """The enrolment waiting for its code, shown again after a wrong one; else None."""
    user = principal_user(principal)
    return mfa_service.pending_enrollment(db.session(), kek(), user.id, user.username,
                                          state.settings().mfa_issuer)


def confirm_enrollment(principal: Principal, current_password: str, code: str) -> list[str]:
    """Switch MFA on with the password and a valid code; returns the ten recovery codes,
    to show once.

    The password first (403, rate-limited with password changes): a stolen access
    token must not be enough to put the thief's authenticator on the account, and
    a user without MFA has no step-up to prove themselves with (issue 16 item 9).
    """
    user = principal_user(principal)
    check_current_password(principal, user, current_password,
                           failure=("MFA_FAILURE", "enroll_bad_password"))
    try:
        codes = mfa_service.confirm_enrollment(db.session(), kek(), user.id, code, state.now())
    except mfa_service.InvalidCode:  # answered by app.errors.CORE_ERRORS
        audit("MFA_FAILURE", user_id=user.id, result="failure", reason="enroll_bad_code")
        raise
    audit("MFA_ENROLLED", user_id=user.id)
    return codes


def step_up(principal: Principal, code: str) -> tuple[User, AuthSession]:
    """A TOTP or recovery code raises the session to aal2 with a fresh auth_time."""
    user = principal_user(principal)
    # The session first: a code (single use) must not be spent on a session that is gone.
    sess = live_session(principal, user)
    with limit(state.settings().ratelimit_mfa, f"user:{user.id}", "mfa-user"):
        method = mfa_service.verify_second_factor(db.session(), kek(), user.id, code, state.now())
    if method is None:
        audit("MFA_FAILURE", user_id=user.id, result="failure", reason="step_up_bad_code")
        raise Unauthorized(BAD_CODE)
    sess.acr, sess.amr, sess.auth_time = "aal2", ["pwd", "otp"], state.now()
    db.session.commit()
    audit("MFA_SUCCESS", user_id=user.id, session_id=sess.id, reason=f"step_up_{method}")
    return user, sess
