"""From a verified token to its principal, kept together in one cache entry.

A :class:`TokenEntry` is what the verified-token cache holds per token: the
verified token (it is one: a subclass built by the verifier itself, so a
cache lookup touches one object), and the principal built from its claims
(with its revocation query), one for each way the token can arrive (header
or cookie). Both are
facts of the token, so they are built once and live as long as it is cached.
An HS256 token's principal is read from the database on every use instead
(whoever holds the shared secret writes any claim): it is never kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.ids import user_id_from_subject
from ..core.tokens import TokenRejected, VerifiedToken
from .legacy import legacy_principal
from .principal import Principal, revocation_query

__all__ = ["TokenEntry"]


@dataclass(slots=True)
class TokenEntry(VerifiedToken):
    """One cached token: the verified token and the principals built from it."""

    by_header: Principal | None = None
    by_cookie: Principal | None = None

    def principal(self, via_cookie: bool) -> Principal:
        """The token's principal (built from the claims once, or from the database)."""
        if self.legacy:
            return legacy_principal(self, via_cookie)  # reads the user: never kept
        kept = self.by_cookie if via_cookie else self.by_header
        if kept is None:
            kept = _claims_principal(self, via_cookie)
            if via_cookie:
                self.by_cookie = kept
            else:
                self.by_header = kept
        return kept


def _claims_principal(verified: VerifiedToken, via_cookie: bool) -> Principal:
    claims = verified.claims
    user_id = user_id_from_subject(claims["sub"])  # the access profile checked it already
    if user_id is None:
        raise TokenRejected("bad_claim_type")
    return Principal(
        user_id=user_id,
        session_id=verified.sid,
        client_id=claims["client_id"],
        scopes=frozenset(claims["scope"].split()),
        roles=frozenset(claims["roles"]),
        acr=claims["acr"],
        amr=tuple(claims["amr"]),
        auth_time=int(claims["auth_time"]),
        jti=verified.jti,
        exp=verified.exp,
        kid=verified.kid,
        legacy=verified.legacy,
        token_hash=verified.token_hash,
        via_cookie=via_cookie,
        revocation_query=revocation_query(verified, user_id),
    )
