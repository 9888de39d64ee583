"""The Flask side of tokens: the per-app keyring, request authentication, guards.

The rules live in ``app.core`` (keyring, tokens, revocation); this package
feeds them the settings, the database and the request, and puts the
principal on ``g`` only after every check passed (SPEC §3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .. import state
from ..audit import audit
from ..core import keys as key_service
from ..core.crypto import SealError, constant_time_equal
from ..core.ids import user_id_from_subject
from ..core.keyring import Keyring, KeyringSnapshot, KeyringUnavailable, build_snapshot
from ..core.migration import effective_phase, stored_phase
from ..core.tokens import (
    TokenPolicy,
    TokenRejected,
    VerifiedToken,
    VerifiedTokenCache,
    verify_token,
)
from ..errors import CsrfFailed, InvalidToken
from ..extensions import db
from ..metrics import metrics
from .cookies import cookie_names
from .legacy import legacy_principal
from .principal import Principal
from .revocation import check_revoked

__all__ = [
    "Principal",
    "authenticate",
    "check_csrf",
    "current_principal",
    "inspect_access_token",
    "init_app",
    "keyring",
    "snapshot",
    "token_policy",
]

log = logging.getLogger(__name__)
_EXT = "tessera.security"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class _Security:
    keyring: Keyring
    policy: TokenPolicy
    cache: VerifiedTokenCache


def init_app(app: Flask) -> None:
    """Create this app's keyring, token policy and verified-token cache."""
    if _EXT in app.extensions:
        raise RuntimeError("security is already initialised on this app")
    s = app.extensions["tessera.settings"]
    policy = TokenPolicy(
        issuer=s.issuer,
        audience=s.access_audience,
        leeway=int(s.clock_skew_leeway.total_seconds()),
        max_bytes=s.token_max_bytes,
        legacy_accept_until=s.legacy_accept_until,
        legacy_max_lifetime=int(s.legacy_max_lifetime.total_seconds()),
        legacy_subject_claim=s.legacy_subject_claim,
        legacy_issuer=s.legacy_issuer,
        legacy_audience=s.legacy_audience,
    )
    ring = Keyring(
        _load_snapshot,
        refresh_seconds=s.keyring_refresh.total_seconds(),
        cooldown_seconds=s.keyring_reload_cooldown.total_seconds(),
    )
    app.extensions[_EXT] = _Security(ring, policy, VerifiedTokenCache())


def _ext() -> _Security:
    return current_app.extensions[_EXT]  # type: ignore[no-any-return]


def keyring() -> Keyring:
    """The current app's keyring."""
    return _ext().keyring


def snapshot() -> KeyringSnapshot:
    """The current keyring snapshot (reloaded if stale)."""
    return _ext().keyring.current()


def token_policy() -> TokenPolicy:
    return _ext().policy


def _load_snapshot() -> KeyringSnapshot:
    """Read keys and phase from the database and parse them (once per load).

    In a session of its own: a reload can come in the middle of a request (a login
    signing its first token), whose pending rows must be neither committed nor
    rolled back by the keyring ending its read.
    """
    s = state.settings()
    kek = s.key_encryption_key
    assert kek is not None
    try:
        with Session(db.engine) as session:  # closing ends the read; rows keep their values
            rows = key_service.list_keys(session)
            phase = effective_phase(
                stored_phase(session), s.migration_phase, bool(s.legacy_hs256_secrets)
            )
    except SQLAlchemyError as exc:
        raise KeyringUnavailable(str(exc.__class__.__name__)) from None
    try:
        return build_snapshot(
            rows,
            s.legacy_hs256_secrets,
            phase,
            lambda row: key_service.load_private_key(row, kek),
            now=state.now(),
            retired_lifetime=s.access_token_ttl + s.clock_skew_leeway,
        )
    except SealError:
        log.critical("KEY_ENCRYPTION_KEY cannot open the active signing key: wrong key?")
        raise


def _read_token() -> tuple[str | None, bool]:
    """The bearer token (header first, then the access cookie) and whether it came by cookie."""
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise InvalidToken("malformed_header")
        return value.strip(), False
    names = cookie_names(state.settings().cookie_secure)
    cookie = request.cookies.get(names.access)
    return (cookie, True) if cookie else (None, False)


def check_csrf() -> None:
    """Double-submit token and same-origin check for cookie-authenticated writes (SPEC §5)."""
    names = cookie_names(state.settings().cookie_secure)
    expected = request.cookies.get(names.csrf, "")
    offered = request.headers.get("X-CSRF-Token", "")
    if not offered and request.mimetype == "application/x-www-form-urlencoded":
        offered = request.form.get("csrf_token", "")  # the web pages' forms
    if not expected or not offered or not constant_time_equal(expected, offered):
        raise CsrfFailed()
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") != request.host_url.rstrip("/"):
        raise CsrfFailed("The request's origin is not this site.")


def authenticate() -> Principal:
    """Verify the request's token (SPEC §3 steps 1-6) and attach the principal to ``g``."""
    token, via_cookie = _read_token()
    if token is None:
        raise InvalidToken("missing_token", "An access token is required.")
    sec = _ext()
    now = state.now()
    try:
        verified = verify_token(
            token, sec.keyring.current(), sec.policy, now.timestamp(),
            keyring=sec.keyring, cache=sec.cache,
        )
        principal = _principal(verified, via_cookie)
        check_revoked(principal, verified, now)
    except TokenRejected as exc:
        log.info("token rejected: %s", exc.reason)
        _count_rejection(exc.reason)
        audit("TOKEN_INVALID", result="failure", reason=exc.reason)
        raise InvalidToken(exc.reason) from None
    if via_cookie and request.method not in _SAFE_METHODS:
        check_csrf()
    metrics().verified_ok.inc()
    g.tessera_principal = principal
    return principal


def inspect_access_token(token: str) -> VerifiedToken | None:
    """The verified token if it would be accepted right now (every check of SPEC §3), else None."""
    sec = _ext()
    now = state.now()
    try:
        verified = verify_token(token, sec.keyring.current(), sec.policy,
                                now.timestamp(), keyring=sec.keyring, cache=sec.cache)
        check_revoked(_principal(verified, False), verified, now)
    except TokenRejected:
        return None
    return verified


def _count_rejection(reason: str) -> None:
    if reason == "key_revoked":  # revoked by another worker: reload before the refresh is due
        _ext().keyring.invalidate()
    counters = metrics()
    counters.verifications.labels("invalid", reason).inc()
    if reason == "unknown_kid":
        counters.unknown_kids.inc()


def _principal(verified: VerifiedToken, via_cookie: bool) -> Principal:
    if verified.legacy:
        # Whoever holds the shared secret can write any claim, in either form: the user,
        # roles and state come from the database, never from the token (issue 16).
        return legacy_principal(verified, via_cookie)  # reads the user: never cached
    cached = verified.derived
    if cached is not None and cached.via_cookie == via_cookie:
        return cached  # type: ignore[no-any-return]
    principal = _claims_principal(verified, via_cookie)
    verified.derived = principal  # built from the claims alone, so it lives with them
    return principal


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
    )


def current_principal() -> Principal:
    """The authenticated principal of this request (only set after every check passed)."""
    principal: Principal | None = g.get("tessera_principal")
    if principal is None:
        raise InvalidToken("missing_token", "An access token is required.")
    return principal
