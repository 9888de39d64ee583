"""Who is calling: the principal attached to a request after every check passed."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SCOPES", "LEGACY_EXCHANGE_CLIENT", "Principal", "roles_from_shared_secret"]

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


@dataclass(frozen=True)
class Principal:
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

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def has_role(self, role: str) -> bool:
        return role in self.roles
