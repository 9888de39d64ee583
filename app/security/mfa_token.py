"""The login challenge token (SPEC §7): good for nothing but ``POST /auth/mfa/verify``.

It is a JWS with its own ``typ`` and audience, signed by the asymmetric key;
the access-token verifier refuses it (wrong ``typ``), and this module refuses
access tokens (wrong ``typ`` and audience).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from ..extensions import db
from ..models import AuditEvent, User
from .step_token import issue_step_token, read_step_token, step_audience

__all__ = [
    "MAX_FAILURES",
    "MFA_TOKEN_TYPE",
    "MfaChallenge",
    "failures_since",
    "issue_mfa_token",
    "read_mfa_token",
]

# Wrong codes against one login challenge before its mfa_token is spent (SPEC §7).
MAX_FAILURES = 5

MFA_TOKEN_TYPE = "tessera-mfa+jwt"

def _audience() -> str:
    return step_audience("/auth/mfa/verify")


@dataclass(frozen=True)
class MfaChallenge:
    user_id: int
    jti: str
    exp: int
    auth_time: int


def issue_mfa_token(user: User) -> str:
    """A short-lived token proving the password step passed for ``user``."""
    return issue_step_token(user.id, MFA_TOKEN_TYPE, _audience(), ["pwd"])


def read_mfa_token(token: str) -> MfaChallenge:
    """Verify an MFA token (signature, typ, iss, aud, times) or raise TokenRejected."""
    user_id, claims = read_step_token(token, MFA_TOKEN_TYPE, _audience())
    return MfaChallenge(user_id, str(claims["jti"]), int(claims["exp"]), int(claims["iat"]))


def failures_since(user_id: int, since: datetime) -> int:
    """Failed login codes of ``user_id`` since ``since``, counted from the audit trail.

    The trail is shared by every worker, so the count holds across processes.
    """
    stmt = select(func.count()).select_from(AuditEvent).where(
        AuditEvent.user_id == user_id, AuditEvent.event == "MFA_FAILURE",
        AuditEvent.reason == "login_bad_code", AuditEvent.at >= since)
    return int(db.session.scalar(stmt) or 0)
