"""Revocation from inside the app (SPEC §6): the settings, the stores and the TTLs.

The rules live in ``app.core.revocation``; this module decides how long each
revocation must live (as long as anything it revokes could still be
presented) and wires the per-request check into authentication.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from flask import Flask, current_app

from .. import state
from ..audit import audit
from ..core.redis_connections import connection_factory
from ..core.revocation import (
    PREFIX,
    RevocationService,
    RevocationState,
    StoreUnavailable,
    WaitPolicy,
)
from ..core.revocation_mirror import RevocationMirror
from ..core.revocation_trust import TrustKeeper, TrustStore
from ..core.tokens import TokenRejected
from ..errors import ServiceUnavailable
from ..extensions import db
from ..models import AuthSession
from .principal import Principal

__all__ = [
    "check_revoked",
    "claim_access_token",
    "end_legacy_tokens",
    "init_app",
    "longest_token_lifetime",
    "publish_claim",
    "revocations",
    "revoke_access_token",
    "revoke_session",
    "revoke_user_tokens",
]

_STATE = "tessera.revocation"


def init_app(app: Flask) -> None:
    """Per-process revocation state (outage flag, trust view, mirror) and this app's service."""
    counters = app.extensions["tessera.metrics"]
    client = app.extensions["tessera.redis"]
    mirror = trust = None
    settings = app.extensions["tessera.settings"]
    if client is not None:
        trust = TrustKeeper(TrustStore(lambda: db.engine),
                            settings.revocation_trust_recheck.total_seconds())
        # Every new connection tells the keeper which server it reached before it
        # carries a command: a restarted or replaced Redis is known at its first read.
        client.connection_pool.connection_kwargs["redis_connect_func"] = trust.on_connect
        if settings.revocation_mirror:  # opens in the first checking worker
            # Made like the client's connections (after the line above, so the mirror's
            # tell the keeper too), in RESP2: invalidations then arrive as plain pub/sub
            # messages, which a raw connection reads like any reply. The mirror sends its
            # own health checks.
            mirror = RevocationMirror(
                connection_factory(client, protocol=2, health_check_interval=0), PREFIX)
    revocation_state = RevocationState(
        on_fallback=lambda why: counters.store_fallbacks.labels(why).inc(), mirror=mirror,
        trust=trust)
    # db.session is the scoped-session proxy: one service serves every request and thread.
    app.extensions[_STATE] = RevocationService(
        db.session, client, state=revocation_state,
        fail_mode=settings.revocation_fail_mode,
        wait=WaitPolicy(settings.revocation_redis_wait_replicas,
                        math.ceil(settings.revocation_redis_wait_timeout.total_seconds() * 1000)))


def revocations() -> RevocationService:
    """This app's revocation service (over the request's database session and Redis)."""
    service: RevocationService = current_app.extensions[_STATE]
    return service


def _margin() -> timedelta:
    return state.settings().clock_skew_leeway + timedelta(seconds=1)


def longest_token_lifetime() -> timedelta:
    """How long a revocation that cannot see a token's ``exp`` must be remembered.

    That is the longest any accepted token can still live: ACCESS_TOKEN_TTL for
    Tessera's tokens, LEGACY_MAX_LIFETIME for HS256 ones (verification refuses a
    legacy token whose ``exp`` is further away), plus the leeway.
    """
    s = state.settings()
    return max(s.access_token_ttl, s.legacy_max_lifetime) + _margin()


def check_revoked(principal: Principal, now: datetime) -> None:
    """Step 6 of SPEC §3: jti, sid and user in one lookup at ``now``; raise TokenRejected
    if revoked. The query was built with the principal (once per cached token)."""
    try:
        reason = revocations().check_query(principal.revocation_query, now)
    except StoreUnavailable:
        raise ServiceUnavailable("Revocation state cannot be read right now.") from None
    if reason is not None:
        raise TokenRejected(reason)


def _until_exp(principal: Principal) -> datetime:
    return datetime.fromtimestamp(principal.exp, state.now().tzinfo) + _margin()


def _handle(principal: Principal) -> tuple[str, str]:
    """The revocation that names the presented token: its jti, else (legacy) its hash."""
    if principal.jti:
        return "jti", principal.jti
    assert principal.token_hash is not None  # set for every token without a jti
    return "tokenhash", principal.token_hash


def claim_access_token(principal: Principal, *, reason: str) -> bool:
    """Revoke the presented token in the caller's transaction, until its ``exp``; False if
    it was revoked already (another request won). The caller commits, then publishes."""
    kind, value = _handle(principal)
    return revocations().claim(kind, value, _until_exp(principal), state.now(), reason)


def publish_claim(principal: Principal) -> None:
    """After the commit: the claimed revocation to Redis (best effort, as every write)."""
    kind, value = _handle(principal)
    revocations().publish(kind, value, _until_exp(principal), state.now())


def end_legacy_tokens(user_id: int, *, reason: str) -> None:
    """Refuse every HS256 token of ``user_id`` issued before now (or without ``iat``)."""
    now = state.now()
    revocations().revoke_legacy_user(user_id, now, now + longest_token_lifetime(), reason)


def revoke_access_token(principal: Principal, *, reason: str) -> None:
    """Revoke the presented access token itself, until its ``exp``."""
    expires_at = _until_exp(principal)
    service = revocations()
    if principal.jti:
        service.revoke_jti(principal.jti, expires_at, state.now(), reason)
    elif principal.token_hash:
        service.revoke_token_hash(principal.token_hash, expires_at, state.now(), reason)
    audit("TOKEN_REVOKED", user_id=principal.user_id, session_id=principal.session_id,
          reason=reason, details={"jti": principal.jti} if principal.jti else None)


def revoke_session(sess: AuthSession, *, reason: str, actor_id: int | None = None) -> None:
    """End ``sess``: its refresh tokens and every access token it issued."""
    now = state.now()
    expires_at = max(sess.expires_at, now + state.settings().access_token_ttl) + _margin()
    revocations().revoke_session(sess.id, expires_at, now, reason)
    audit("SESSION_REVOKED", user_id=sess.user_id, session_id=sess.id, reason=reason,
          actor_id=actor_id)


def revoke_user_tokens(user_id: int, *, reason: str, actor_id: int | None = None) -> None:
    """Every session and token of ``user_id``, issued before now (SPEC §6)."""
    now = state.now()
    revocations().revoke_user(user_id, now, now + longest_token_lifetime(), reason)
    audit("USER_TOKENS_REVOKED", user_id=user_id, actor_id=actor_id, reason=reason)
