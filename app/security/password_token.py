"""The forced password change token: good for nothing but ``POST /auth/password/temporary``.

A login with a temporary password (one an admin set) opens no session: it
answers this short-lived token instead, which proves the password step (and,
for a user with MFA, the second step) passed. Like the MFA token it is a JWS
with its own ``typ`` and audience, so neither kind of token can stand in for
the other or for an access token; it is spent once used.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .. import state
from ..core.ids import user_id_from_subject
from ..core.tokens import TokenProfile, TokenRejected, sign_token, verify_token
from ..errors import ServiceUnavailable
from ..models import User
from . import keyring, snapshot, token_policy
from .revocation import revocations

__all__ = ["PASSWORD_TOKEN_TYPE", "PasswordChallenge", "issue_password_token",
           "read_password_token", "spend_password_token"]

PASSWORD_TOKEN_TYPE = "tessera-password-change+jwt"
_CLAIMS: dict[str, type | tuple[type, ...]] = {
    "iss": str, "aud": str, "sub": str, "exp": int, "nbf": int, "iat": int, "jti": str,
    "amr": list,
}


def _audience() -> str:
    return state.settings().issuer.rstrip("/") + "/auth/password/temporary"


@dataclass(frozen=True)
class PasswordChallenge:
    user_id: int
    jti: str
    exp: int
    amr: list[str]

    @property
    def acr(self) -> str:
        """The session it opens keeps the strength of the login that got here."""
        return "aal2" if "otp" in self.amr else "aal1"


def issue_password_token(user: User, amr: list[str]) -> str:
    """A token proving that ``user`` logged in (by ``amr``) with a temporary password."""
    signer = snapshot().signer
    if signer is None:
        raise ServiceUnavailable("No signing key is available.")
    now = int(state.now().timestamp())
    ttl = int(state.settings().mfa_token_ttl.total_seconds())
    claims = {"iss": state.settings().issuer, "aud": _audience(), "sub": str(user.id),
              "iat": now, "nbf": now, "exp": now + ttl, "jti": secrets.token_urlsafe(16),
              "amr": amr}
    return sign_token(signer, claims, typ=PASSWORD_TOKEN_TYPE)


def read_password_token(token: str) -> PasswordChallenge:
    """Verify the token (signature, typ, iss, aud, times, not spent) or raise TokenRejected."""
    profile = TokenProfile(frozenset({PASSWORD_TOKEN_TYPE}), _CLAIMS, _audience(),
                           allow_legacy=False)
    verified = verify_token(token, snapshot(), token_policy(), state.now().timestamp(),
                            keyring=keyring(), profile=profile)
    claims = verified.claims
    user_id = user_id_from_subject(claims.get("sub"))
    if verified.legacy or user_id is None:
        raise TokenRejected("bad_claim_type")
    jti = str(claims["jti"])
    if revocations().check(jti=jti, sid=None, user_id=None, iat=None, token_hash=None,
                           now=state.now()) is not None:
        raise TokenRejected("revoked")
    return PasswordChallenge(user_id, jti, int(claims["exp"]), [str(m) for m in claims["amr"]])


def spend_password_token(challenge: PasswordChallenge) -> None:
    """Single use: refuse this token from now on."""
    expires = datetime.fromtimestamp(challenge.exp, UTC) + timedelta(seconds=60)
    revocations().revoke_jti(challenge.jti, expires, state.now(), "password_token_spent")
