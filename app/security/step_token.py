"""Short-lived tokens for one step of a login (the MFA challenge, a forced password
change): a JWS signed by the asymmetric key, with a ``typ`` and an audience of its
own, so that no such token stands in for another kind or for an access token.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import state
from ..core.ids import user_id_from_subject
from ..core.tokens import TokenProfile, TokenRejected, sign_token, verify_token
from ..errors import ServiceUnavailable
from .context import keyring, snapshot, token_policy
from .revocation import revocations

__all__ = ["issue_step_token", "read_step_token", "spend_step_token", "step_audience",
           "step_token_spent"]

_CLAIMS: dict[str, type | tuple[type, ...]] = {
    "iss": str, "aud": str, "sub": str, "exp": int, "nbf": int, "iat": int, "jti": str,
    "amr": list,
}


def step_audience(path: str) -> str:
    """The audience of a step token: the one route that takes it."""
    return state.settings().issuer.rstrip("/") + path


def issue_step_token(user_id: int, typ: str, audience: str, amr: list[str]) -> str:
    """Sign a step token for ``user_id``, living MFA_TOKEN_TTL."""
    signer = snapshot().signer
    if signer is None:
        raise ServiceUnavailable("No signing key is available.")
    now = int(state.now().timestamp())
    ttl = int(state.settings().mfa_token_ttl.total_seconds())
    claims = {"iss": state.settings().issuer, "aud": audience, "sub": str(user_id),
              "iat": now, "nbf": now, "exp": now + ttl, "jti": secrets.token_urlsafe(16),
              "amr": amr}
    return sign_token(signer, claims, typ=typ)


def read_step_token(token: str, typ: str, audience: str) -> tuple[int, dict[str, Any]]:
    """The user id and claims of a step token (signature, typ, iss, aud, times checked),
    or TokenRejected."""
    profile = TokenProfile(frozenset({typ}), _CLAIMS, audience, allow_legacy=False)
    verified = verify_token(token, keyring(), token_policy(), state.now().timestamp(),
                            profile=profile)
    user_id = user_id_from_subject(verified.claims.get("sub"))  # the profile checked it
    if verified.legacy or user_id is None:
        raise TokenRejected("bad_claim_type")
    return user_id, verified.claims


def step_token_spent(jti: str) -> bool:
    """Whether the step token ``jti`` was used already (revoked by its jti)."""
    return revocations().check(jti=jti, sid=None, user_id=None, iat=None, token_hash=None,
                               now=state.now()) is not None


def spend_step_token(jti: str, exp: int, reason: str) -> None:
    """Single use: refuse the token ``jti`` from now until after its ``exp``."""
    expires = datetime.fromtimestamp(exp, UTC) + timedelta(seconds=60)
    revocations().revoke_jti(jti, expires, state.now(), reason)
