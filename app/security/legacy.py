"""Principals for HS256 tokens: the old system's, or Tessera's own from phase ``legacy`` (SPEC §4).

Everyone who holds the shared secret can mint either form with any claims, so
such a token names a user and its times, nothing more: roles and the disabled
flag are read from the database, ``acr`` is ``aal1``, the scopes are a normal
login's, and there is no session (a ``sid`` claim grants nothing; it can only
get the token refused when that session is revoked). Claims such as ``roles``,
``acr``, ``amr``, ``auth_time``, ``scope`` and ``sid`` are ignored.

The one role never granted to such a token is ``admin``
(``roles_from_shared_secret``): the admin API and page need a password login.
"""

from __future__ import annotations

from sqlalchemy import select

from .. import state
from ..audit import audit
from ..core.ids import user_id_from_subject
from ..core.migration import record_legacy_use
from ..core.tokens import TokenRejected, VerifiedToken
from ..extensions import db
from ..metrics import metrics
from ..models import User
from .principal import DEFAULT_SCOPES, Principal, revocation_query, roles_from_shared_secret

__all__ = ["legacy_principal"]


def _find_user(verified: VerifiedToken) -> User | None:
    subject = verified.subject
    if verified.old_system and state.settings().legacy_subject_lookup == "username":
        # The stored name exactly: no case or Unicode folding, so that two names the old
        # system told apart ("Kelvin", "\u212aelvin", "kelvin") never merge into one user.
        return db.session.scalars(select(User).where(User.username == subject)).first()
    # Tessera's own form always carries the user id (its access-token claim rules).
    user_id = user_id_from_subject(subject, leading_zeros=verified.old_system)
    return db.session.get(User, user_id) if user_id is not None else None


def legacy_principal(verified: VerifiedToken, via_cookie: bool) -> Principal:
    """Map an HS256 token's subject onto a user, and count the legacy use."""
    user = _find_user(verified)
    if user is None:
        raise TokenRejected("unknown_subject")
    if user.disabled:
        raise TokenRejected("user_disabled")
    record_legacy_use(db.session(), state.now())
    metrics().legacy_accepted.inc()
    audit("LEGACY_TOKEN_ACCEPTED", user_id=user.id, kid=verified.kid)
    claims = verified.claims
    return Principal(
        user_id=user.id,
        session_id=None,
        client_id="legacy",
        # A legacy token stood for the whole user: the scopes of a normal login and
        # the roles the user has now (never scopes or roles from the token), but
        # not the right to administer Tessera, which no old-system token had.
        scopes=frozenset(DEFAULT_SCOPES),
        roles=roles_from_shared_secret(user.roles),
        acr="aal1",
        amr=("pwd",),
        auth_time=int(claims["iat"]) if isinstance(claims.get("iat"), int) else None,
        jti=verified.jti,
        exp=verified.exp,
        kid=verified.kid,
        legacy=True,
        token_hash=verified.token_hash,
        via_cookie=via_cookie,
        revocation_query=revocation_query(verified, user.id),
    )
