"""Request authentication (SPEC §3 steps 1-6): token text → verified token → principal → verdict.

The principal goes on ``g`` only after every check passed (the signature and
claims, the revocation lookup, CSRF for cookie-authenticated writes).
"""

from __future__ import annotations

import logging

from flask import g, request

from .. import state
from ..audit import audit
from ..core.tokens import TokenRejected, VerifiedToken, verify_cached
from ..errors import InvalidToken
from ..metrics import metrics
from .context import security
from .csrf import check_csrf
from .principal import Principal
from .principals import TokenEntry
from .reading import read_token
from .revocation import check_revoked

__all__ = ["authenticate", "current_principal", "inspect_access_token"]

log = logging.getLogger(__name__)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _verified_principal(token: str, via_cookie: bool) -> tuple[VerifiedToken, Principal]:
    """Steps 1-6 for one token, or TokenRejected: the verified token and its principal."""
    sec = security()
    now = state.now()  # one clock reading for the whole check
    entry = verify_cached(token, sec.keyring, sec.policy, now.timestamp(), sec.cache, TokenEntry)
    principal = entry.principal(via_cookie)
    check_revoked(principal, now)
    return entry, principal


def authenticate() -> Principal:
    """Verify the request's token (SPEC §3 steps 1-6) and attach the principal to ``g``."""
    token, via_cookie = read_token()
    if token is None:
        raise InvalidToken("missing_token", "An access token is required.")
    try:
        _, principal = _verified_principal(token, via_cookie)
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
    try:
        verified, _ = _verified_principal(token, False)
    except TokenRejected:
        return None
    return verified


def _count_rejection(reason: str) -> None:
    if reason == "key_revoked":  # revoked by another worker: reload before the refresh is due
        security().keyring.invalidate()
    counters = metrics()
    counters.verifications.labels("invalid", reason).inc()
    if reason == "unknown_kid":
        counters.unknown_kids.inc()


def current_principal() -> Principal:
    """The authenticated principal of this request (only set after every check passed)."""
    principal: Principal | None = g.get("tessera_principal")
    if principal is None:
        raise InvalidToken("missing_token", "An access token is required.")
    return principal
