"""Who is calling: the principal attached to a request after every check passed."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.revocation import RevocationQuery
from ..core.tokens import VerifiedToken

__all__ = ["DEFAULT_SCOPES", "LEGACY_EXCHANGE_CLIENT", "Principal", "revocation_query",
           "roles_from_shared_secret"]

# What a login grants; the notes API checks these (SPEC §8).
DEFAULT_SCOPES = ("notes:read", "notes:write")

# The client of sessions started by trading a legacy token (no password typed).
LEGACY_EXCHANGE_CLIENT = "legacy-exchange"

# Every old-system service holds the shared HS256 secret and none of them ever
# administered Tessera: what that secret proves, directly or through the
# exchange, never carries these roles. Administering needs a password login.
_PASSWORD_LOGIN_ONLY_ROLES = frozenset({"admin"})


def roles_from_shared_secret(roles: list[str] | frozenset[str]) -> frozenset[str]:
    """The roles a user holds when only the shared HS256 secret vouches for them."""
    return frozenset(roles) - _PASSWORD_LOGIN_ONLY_ROLES


def revocation_query(verified: VerifiedToken, user_id: int) -> RevocationQuery:
    """What step 6 of SPEC §3 asks about the token: its jti (or hash), kid, sid, user."""
    return RevocationQuery.of(
        jti=verified.jti, sid=verified.sid, user_id=user_id, iat=verified.iat,
        token_hash=verified.token_hash, kid=verified.kid, legacy=verified.legacy,
    )


@dataclass(frozen=True)
class Principal:
    """The caller, from a token that passed every check; ``revocation_query`` is the
    question step 6 asks about that token, built with the principal (once per token)."""

    user_id: int
    session_id: str | None
    client_id: str
    scopes: frozenset[str]
    roles: frozenset[str]
    acr: str
    amr: tuple[str, ...]
    auth_time: int | None
    jti: str | None
    exp: float
    kid: str
    legacy: bool
    token_hash: str | None  # revocation handle of a legacy token without jti
    via_cookie: bool
    revocation_query: RevocationQuery = field(repr=False, compare=False)

    def has_scope(self, scope: str) -> bool:
        """Whether the token grants ``scope``."""
        return scope in self.scopes

    def has_role(self, role: str) -> bool:
        """Whether the caller holds ``role``."""
        return role in self.roles
