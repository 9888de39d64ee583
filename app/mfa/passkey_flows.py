"""Passkey registration, login and step-up, shared by the JSON API and the pages (issue 22).

Every refused answer is audited (``MFA_FAILURE``, reason ``passkey_<why>``) and
answered 401 with ``details.reason`` naming the check that failed; nothing
else changes (the challenge was single-use anyway).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .. import state
from ..accounts import has_second_factor, live_session, principal_user
from ..audit import audit
from ..auth import flows as auth_flows
from ..config import STEP_UP_MAX_AGE
from ..core import passkeys as ceremonies
from ..core.tokens import TokenRejected
from ..errors import Conflict, InvalidToken, StepUpRequired, Unauthorized, ValidationFailed
from ..extensions import db
from ..metrics import metrics
from ..models import AuthSession, Passkey, User
from ..ratelimit import limit
from ..security import Principal
from ..security.mfa_token import MfaChallenge, read_mfa_token
from ..security.password_token import issue_password_token
from ..security.step_token import spend_step_token, step_token_spent

__all__ = ["begin_login", "begin_registration", "begin_step_up",
           "complete_login", "finish_registration", "step_up"]


_MESSAGES = {
    "challenge": "This passkey request has expired or was already used; start again.",
    "wrong_origin": "The passkey answered for another site.",
    "wrong_rp_id": "The passkey answered for another relying party.",
    "sign_count": "The passkey's signature counter went backwards: it may have been copied.",
    "unknown_credential": "This passkey is not registered to this account.",
    "bad_signature": "The passkey's signature does not match.",
    "already_registered": "This passkey is already registered.",
    "user_not_present": "The passkey did not confirm that you were present.",
}


def relying_party() -> ceremonies.RelyingParty:
    """Tessera as a WebAuthn relying party, from the settings."""
    s = state.settings()
    return ceremonies.RelyingParty(s.rp_id, s.mfa_issuer, s.rp_origin, s.webauthn_timeout)


def _refused(user_id: int | None, ceremony: str, exc: ceremonies.PasskeyRejected,
             session_id: str | None = None) -> Unauthorized:
    audit("MFA_FAILURE", user_id=user_id, session_id=session_id, result="failure",
          reason=f"passkey_{exc.reason}", details={"ceremony": ceremony})
    message = _MESSAGES.get(exc.reason, "The passkey's answer is malformed.")
    return Unauthorized(message, details={"reason": exc.reason})


def _binding(principal: Principal) -> str:
    if principal.session_id is None:  # an HS256 token names no session to bind to
        raise Unauthorized("Passkeys need a session; log in again.")
    return principal.session_id


def recently_stepped_up(principal: Principal) -> bool:
    """aal2 with an auth_time at most STEP_UP_MAX_AGE old (RFC 9470, as ``require_mfa``)."""
    return principal.acr == "aal2" and principal.auth_time is not None and \
        state.now().timestamp() - principal.auth_time <= STEP_UP_MAX_AGE


def begin_registration(principal: Principal, current_password: str | None) -> dict[str, Any]:
    """Options to create a passkey. A user with a second factor needs a recent step-up;
    one without proves the password (a stolen access token must not add a thief's key)."""
    user = principal_user(principal)
    binding = _binding(principal)
    if has_second_factor(user.id):
        if not recently_stepped_up(principal):
            raise StepUpRequired(STEP_UP_MAX_AGE)
    elif current_password is None:
        raise ValidationFailed(details={"current_password": ["Missing data for required field."]})
    else:
        auth_flows.check_current_password(principal, user, current_password,
                                          failure=("MFA_FAILURE", "passkey_bad_password"))
    return ceremonies.registration_options(db.session(), relying_party(), user.id,
                                           user.username, binding, state.now())


def finish_registration(principal: Principal, credential: dict[str, Any], name: str) -> Passkey:
    """Store the new passkey the browser created for the options just given."""
    user = principal_user(principal)
    binding = _binding(principal)
    try:
        passkey = ceremonies.finish_registration(db.session(), relying_party(), user.id,
                                                 binding, credential, name, state.now())
    except ceremonies.PasskeyRejected as exc:
        raise _refused(user.id, "register", exc, binding) from None
    audit("PASSKEY_REGISTERED", user_id=user.id, session_id=binding,
          details={"passkey_id": passkey.id, "name": name,
                   "kind": "swk" if passkey.backup_eligible else "hwk"})
    return passkey


def begin_step_up(principal: Principal) -> dict[str, Any]:
    """Options to step up with one of the user's passkeys, bound to this session."""
    user = principal_user(principal)
    live_session(principal, user)
    # Without a passkey: NoPasskeys, a 409 by app.errors.CORE_ERRORS.
    return ceremonies.authentication_options(db.session(), relying_party(), user.id,
                                             ceremonies.STEP_UP, _binding(principal),
                                             state.now())


def step_up(principal: Principal, credential: dict[str, Any]) -> tuple[User, AuthSession]:
    """A passkey raises the session to aal2 with a fresh auth_time (RFC 9470)."""
    user = principal_user(principal)
    sess = live_session(principal, user)
    with limit(state.settings().ratelimit_mfa, f"user:{user.id}", "mfa-user"):
        try:
            used = ceremonies.finish_authentication(db.session(), relying_party(), user.id,
                                                    ceremonies.STEP_UP, sess.id, credential,
                                                    state.now())
        except ceremonies.PasskeyRejected as exc:
            raise _refused(user.id, "step_up", exc, sess.id) from None
    sess.acr, sess.amr, sess.auth_time = "aal2", ["pwd", *used.amr], state.now()
    db.session.commit()
    audit("MFA_SUCCESS", user_id=user.id, session_id=sess.id, reason="step_up_passkey",
          details={"passkey_id": used.passkey_id, "user_verified": used.user_verified})
    return user, sess


def _challenge(mfa_token: str) -> tuple[MfaChallenge, User]:
    try:
        challenge = read_mfa_token(mfa_token)
    except TokenRejected as exc:
        raise InvalidToken(exc.reason) from None
    user = db.session.get(User, challenge.user_id)
    if step_token_spent(challenge.jti) or user is None or user.disabled:
        raise InvalidToken("mfa_token_spent", "This login attempt has ended; log in again.")
    return challenge, user


def begin_login(mfa_token: str) -> dict[str, Any]:
    """Options to answer a login's MFA challenge with a passkey, bound to its mfa_token."""
    challenge, user = _challenge(mfa_token)
    try:
        return ceremonies.authentication_options(db.session(), relying_party(), user.id,
                                                 ceremonies.LOGIN, challenge.jti, state.now())
    except ceremonies.NoPasskeys:  # the login page words it for its own choice
        raise Conflict("This account has no passkey; use your code.") from None


def complete_login(mfa_token: str, credential: dict[str, Any]
                   ) -> auth_flows.StartedSession | auth_flows.PasswordChangeNeeded:
    """Second step of a login by passkey: aal2, amr ``pwd`` plus ``hwk``/``swk`` and ``user``."""
    challenge, user = _challenge(mfa_token)
    with limit(state.settings().ratelimit_mfa, f"user:{user.id}", "mfa-user"):
        try:
            used = ceremonies.finish_authentication(db.session(), relying_party(), user.id,
                                                    ceremonies.LOGIN, challenge.jti,
                                                    credential, state.now())
        except ceremonies.PasskeyRejected as exc:
            raise _refused(user.id, "login", exc) from None
    spend_step_token(challenge.jti, challenge.exp, "mfa_token_spent")  # single use
    amr = ["pwd", *used.amr]
    details = {"passkey_id": used.passkey_id, "user_verified": used.user_verified}
    if user.must_change_password:
        audit("MFA_SUCCESS", user_id=user.id, reason="login_passkey", details=details)
        metrics().logins.labels("password_change_required").inc()
        audit("LOGIN_SUCCESS", user_id=user.id, reason="password_change_required")
        return auth_flows.PasswordChangeNeeded(issue_password_token(user, amr))
    started = auth_flows.start_session(
        user, acr="aal2", amr=amr, checked_at=datetime.fromtimestamp(challenge.auth_time, UTC))
    audit("MFA_SUCCESS", user_id=user.id, session_id=started.session.id,
          reason="login_passkey", details=details, commit=False)  # issue_tokens commits
    return started
