"""The forced password change token: good for nothing but ``POST /auth/password/temporary``.

A login with a temporary password (one an admin set) opens no session: it
answers this short-lived token instead, which proves the password step (and,
for a user with MFA, the second step) passed. Like the MFA token it is a JWS
with its own ``typ`` and audience, so neither kind of token can stand in for
the other or for an access token; it is spent once used.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.tokens import TokenRejected
from ..models import User
from .step_token import (
    issue_step_token,
    read_step_token,
    spend_step_token,
    step_audience,
    step_token_spent,
)

__all__ = ["PASSWORD_TOKEN_TYPE", "PasswordChallenge", "issue_password_token",
           "read_password_token", "spend_password_token"]

PASSWORD_TOKEN_TYPE = "tessera-password-change+jwt"

def _audience() -> str:
    return step_audience("/auth/password/temporary")


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
    return issue_step_token(user.id, PASSWORD_TOKEN_TYPE, _audience(), amr)


def read_password_token(token: str) -> PasswordChallenge:
    """Verify the token (signature, typ, iss, aud, times, not spent) or raise TokenRejected."""
    user_id, claims = read_step_token(token, PASSWORD_TOKEN_TYPE, _audience())
    jti = str(claims["jti"])
    if step_token_spent(jti):
        raise TokenRejected("revoked")
    return PasswordChallenge(user_id, jti, int(claims["exp"]), [str(m) for m in claims["amr"]])


def spend_password_token(challenge: PasswordChallenge) -> None:
    """Single use: refuse this token from now on."""
    spend_step_token(challenge.jti, challenge.exp, "password_token_spent")
