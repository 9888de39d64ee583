"""Who is calling: the principal attached to a request after every check passed."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SCOPES", "Principal"]

# What a login grants; the notes API checks these (SPEC §8).
DEFAULT_SCOPES = ("notes:read", "notes:write")


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
