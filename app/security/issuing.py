"""Minting access tokens for sessions, with the app's settings and current signer."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from .. import state
from ..core.keyring import SigningMaterial
from ..core.migration import signs_hs256
from ..core.sessions import SessionLimits
from ..core.tokens import access_claims, sign_token
from ..errors import ServiceUnavailable
from ..extensions import db
from .context import keyring, snapshot
from .principal import DEFAULT_SCOPES, LEGACY_EXCHANGE_CLIENT, roles_from_shared_secret
from .revocation import revocations

__all__ = ["DEFAULT_SCOPES", "TokenSession", "TokenUser", "access_token_for",
           "session_limits"]


class TokenUser(Protocol):
    """What an access token reads of its user: the ORM row, or a refresh's plain row."""

    @property
    def id(self) -> int: ...
    @property
    def roles(self) -> list[str]: ...


class TokenSession(Protocol):
    """What an access token reads of its session (``AuthSession`` or ``SessionRow``)."""

    @property
    def id(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def acr(self) -> str: ...
    @property
    def amr(self) -> list[str]: ...
    @property
    def auth_time(self) -> datetime: ...


def session_limits() -> SessionLimits:
    """The session lifetimes of SPEC §5 from the settings."""
    s = state.settings()
    return SessionLimits(s.session_max_age, s.session_idle_timeout, s.refresh_reuse_grace)


def _signer(asymmetric: bool) -> SigningMaterial | None:
    current = snapshot()
    if asymmetric or not signs_hs256(current.phase, state.settings().legacy_accept_until,
                                     state.now()):
        return current.signer
    return current.legacy_signer


def signing_ready() -> bool:
    """Whether every token this phase can ask for can be signed: the asymmetric key
    (aal2 sessions and the legacy exchange need it in every phase) and, while the
    phase signs HS256, the legacy secret."""
    return _signer(True) is not None and _signer(False) is not None


def _revoked_elsewhere(kid: str) -> bool:
    # Without Redis this reads the revocations table. Revocations are committed as they
    # are written, so the request's pending rows (a new session, its audit) cannot change
    # the answer: they wait for the caller's commit instead of a flush of their own here.
    with db.session.no_autoflush:
        return revocations().check(jti=None, sid=None, user_id=None, iat=None,
                                   token_hash=None, now=state.now(), kid=kid) is not None


def access_token_for(
    user: TokenUser, sess: TokenSession, *, asymmetric: bool = False
) -> tuple[str, dict[str, Any]]:
    """Sign an access token for ``sess``: its acr, amr and original auth_time (SPEC §3, §7).

    ``asymmetric`` forces the ES256/RS256 key even in the ``legacy`` phase (the
    legacy exchange must hand out a new-world token). So does an ``aal2`` session:
    an HS256 token is never more than ``aal1`` (anyone holding the shared secret
    could write the claim), so MFA gates could not open with one.
    """
    asymmetric = asymmetric or sess.acr == "aal2"
    signer = _signer(asymmetric)
    if signer is not None and _revoked_elsewhere(signer.kid):
        # Another worker revoked this key moments ago; our keyring has not reloaded yet.
        keyring().invalidate()
        signer = _signer(asymmetric)
        if signer is not None and _revoked_elsewhere(signer.kid):
            signer = None
    if signer is None:
        raise ServiceUnavailable("No signing key is available.")
    s = state.settings()
    # A session the legacy exchange started rests on the shared secret alone.
    roles = (roles_from_shared_secret(user.roles) if sess.client_id == LEGACY_EXCHANGE_CLIENT
             else frozenset(user.roles))
    claims = access_claims(
        issuer=s.issuer,
        audience=s.access_audience,
        user_id=user.id,
        session_id=sess.id,
        client_id=sess.client_id,
        scope=" ".join(DEFAULT_SCOPES),
        roles=sorted(roles),
        auth_time=int(sess.auth_time.timestamp()),
        amr=list(sess.amr),
        acr=sess.acr,
        now=int(state.now().timestamp()),
        ttl=int(s.access_token_ttl.total_seconds()),
    )
    return sign_token(signer, claims), claims
