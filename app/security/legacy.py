"""Principals for legacy HS256 tokens minted by the old system (SPEC §4)."""

from __future__ import annotations

from sqlalchemy import select

from app import state
from app.audit import audit
from app.core.ids import user_id_from_subject
from app.core.migration import record_legacy_use
from app.core.tokens import TokenRejected, VerifiedToken
from app.extensions import db
from app.metrics import metrics
from app.models import User
from app.security.principal import DEFAULT_SCOPES, Principal

__all__ = ["legacy_principal"]


def _find_user(subject: str) -> User | None:
    if state.settings().legacy_subject_lookup == "username":
        return db.session.scalars(select(User).where(User.username == subject.lower())).first()
    user_id = user_id_from_subject(subject, leading_zeros=True)
    return db.session.get(User, user_id) if user_id is not None else None


def legacy_principal(verified: VerifiedToken, via_cookie: bool) -> Principal:
    """Map the old system's claims onto a user, and count the legacy use."""
    user = _find_user(verified.subject)
    if user is None:
        raise TokenRejected("unknown_subject")
    if user.disabled:
        raise TokenRejected("user_disabled")
    record_legacy_use(db.session(), state.now())
    metrics().legacy_accepted.inc()
    audit("LEGACY_TOKEN_ACCEPTED", user_id=user.id, kid=verified.kid)
    claims = verified.claims
    scope = claims.get("scope")
    return Principal(
        user_id=user.id,
        session_id=None,
        client_id="legacy",
        # A legacy token stood for the whole user: the scopes of a normal login and
        # the roles the user has now (never roles from the token).
        scopes=frozenset(scope.split() if isinstance(scope, str) else DEFAULT_SCOPES),
        roles=frozenset(user.roles),
        acr="aal1",
        amr=("pwd",),
        auth_time=int(claims["iat"]) if isinstance(claims.get("iat"), int) else None,
        jti=verified.jti,
        exp=verified.exp,
        kid=verified.kid,
        legacy=True,
        token_hash=verified.token_hash,
        via_cookie=via_cookie,
    )
