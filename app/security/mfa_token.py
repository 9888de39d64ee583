"""The login challenge token (SPEC §7): good for nothing but ``POST /auth/mfa/verify``.

It is a JWS with its own ``typ`` and audience, signed by the asymmetric key;
the access-token verifier refuses it (wrong ``typ``), and this module refuses
access tokens (wrong ``typ`` and audience).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from .. import state
from ..core.ids import user_id_from_subject
from ..core.tokens import TokenProfile, TokenRejected, sign_token, verify_token
from ..errors import ServiceUnavailable
from ..extensions import db
from ..models import AuditEvent, User
from . import keyring, snapshot, token_policy

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
_MFA_CLAIMS: dict[str, type | tuple[type, ...]] = {
    "iss": str, "aud": str, "sub": str, "exp": int, "nbf": int, "iat": int, "jti": str,
    "amr": list,
}


def _audience() -> str:
    return state.settings().issuer.rstrip("/") + "/auth/mfa/verify"


@dataclass(frozen=True)
class MfaChallenge:
    user_id: int
    jti: str
    exp: int
    auth_time: int


def issue_mfa_token(user: User) -> str:
    """A short-lived token proving the password step passed for ``user``."""
    signer = snapshot().signer
    if signer is None:
        raise ServiceUnavailable("No signing key is available.")
    now = int(state.now().timestamp())
    ttl = int(state.settings().mfa_token_ttl.total_seconds())
    claims = {"iss": state.settings().issuer, "aud": _audience(), "sub": str(user.id),
              "iat": now, "nbf": now, "exp": now + ttl, "jti": secrets.token_urlsafe(16),
              "amr": ["pwd"]}
    return sign_token(signer, claims, typ=MFA_TOKEN_TYPE)


def read_mfa_token(token: str) -> MfaChallenge:
    """Verify an MFA token (signature, typ, iss, aud, times) or raise TokenRejected."""
    policy = token_policy()
    profile = TokenProfile(frozenset({MFA_TOKEN_TYPE}), _MFA_CLAIMS, _audience(),
                           allow_legacy=False)
    verified = verify_token(token, snapshot(), policy, state.now().timestamp(),
                            keyring=keyring(), profile=profile)
    claims = verified.claims
    user_id = user_id_from_subject(claims.get("sub"))  # the profile checked it already
    if verified.legacy or user_id is None:
        raise TokenRejected("bad_claim_type")
    return MfaChallenge(user_id, str(claims["jti"]), int(claims["exp"]),
                        int(claims["iat"]))


def failures_since(user_id: int, since: datetime) -> int:
    """Failed login codes of ``user_id`` since ``since``, counted from the audit trail.

    The trail is shared by every worker, so the count holds across processes.
    """
    stmt = select(func.count()).select_from(AuditEvent).where(
        AuditEvent.user_id == user_id, AuditEvent.event == "MFA_FAILURE",
        AuditEvent.reason == "login_bad_code", AuditEvent.at >= since)
    return int(db.session.scalar(stmt) or 0)
