"""Flask extension: protect a resource server's routes with Tessera's tokens.

::

    auth = TesseraAuth(app, verifier=Verifier(...), introspector=Introspector(...))

    @app.get("/notes")
    @auth.require("notes:read")
    def notes(): return {"user": current_token().subject}

    @app.post("/payouts")
    @auth.require("payouts:write", roles=("finance",), acr="aal2", max_age=300,
                  revocation_sensitive=True)
    def payout(): ...

Errors have Tessera's shape, ``{"error", "message", "details", "request_id"}``,
with RFC 6750 and RFC 9470 ``WWW-Authenticate`` challenges:

- no token: 401 ``invalid_token``, ``Bearer realm="..."`` (no error attribute:
  RFC 6750 §3.1 keeps it for requests that carried a token);
- a token refused: 401 ``invalid_token``; the reason code goes to the log and to
  :attr:`TesseraAuth.rejections`, never to the client;
- a scope missing: 403 ``insufficient_scope`` naming it;
- a role missing: 403 ``forbidden``;
- ``acr`` too weak or ``auth_time`` older than ``max_age``: 401
  ``insufficient_user_authentication`` with ``acr_values`` and ``max_age`` (RFC 9470);
- a revocation-sensitive route whose token Tessera's introspection calls
  inactive: 401 ``invalid_token`` (reason ``revoked``);
- Tessera's JWKS never reached since start-up: 503 ``unavailable`` (once a key
  set was fetched, the last good one keeps being served instead).

Flask is an optional dependency: ``pip install 'tessera-verifier[flask]'``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, g, jsonify, request

from .errors import TokenRejected
from .feed import UNAVAILABLE, RevocationFeed
from .introspection import Introspector
from .verifier import Verifier
from .verify import VerifiedToken

__all__ = ["AuthError", "TesseraAuth", "current_token"]

# What a legacy (HS256) token is taken to hold, whatever its payload says.
_LEGACY_CLAIMS: dict[str, Any] = {"acr": "aal1"}

log = logging.getLogger("tessera_verifier.flask")
F = TypeVar("F", bound=Callable[..., Any])
ACR_ORDER = ("aal1", "aal2", "aal3")  # NIST SP 800-63 levels, weakest first


class AuthError(Exception):
    """An authentication or authorization failure, rendered in Tessera's error shape."""

    def __init__(self, status: int, error: str, message: str, challenge: str,
                 details: dict[str, Any] | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.challenge, self.details, self.reason = challenge, details or {}, reason


def current_token() -> VerifiedToken:
    """The verified token of this request (inside a protected view)."""
    token: VerifiedToken = g.tessera_token
    return token


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class TesseraAuth:
    """The extension: one verifier, an optional introspector, and the ``require`` decorator."""

    def __init__(self, app: Flask | None = None, *, verifier: Verifier,
                 introspector: Introspector | None = None, realm: str = "api",
                 clock: Callable[[], float] = time.time,
                 feed: RevocationFeed | None = None) -> None:
        self.verifier = verifier
        self.introspector = introspector
        self.feed = feed  # Tessera's revocations, pushed (issue 23): checked on every request
        self.realm = realm
        self._clock = clock
        self.rejections: Counter[str] = Counter()  # reason code -> count, for metrics
        self.accepted = 0
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the error handler."""
        app.extensions["tessera_verifier"] = self
        app.register_error_handler(AuthError, self._render)

    def _render(self, exc: AuthError) -> Response:
        response = jsonify(error=exc.error, message=exc.message, details=exc.details,
                           request_id=g.get("request_id") or request.headers.get("X-Request-ID"))
        response.status_code = exc.status
        response.headers["WWW-Authenticate"] = exc.challenge
        return response

    def _refuse(self, reason: str, message: str = "The access token is invalid.") -> AuthError:
        self.rejections[reason] += 1
        log.info("token refused: %s", reason)
        challenge = f'Bearer realm="{_quote(self.realm)}", error="invalid_token"'
        return AuthError(401, "invalid_token", message, challenge, reason=reason)

    def authenticate(self) -> tuple[str, VerifiedToken]:
        """The request's bearer token, verified, or an :class:`AuthError`."""
        header = request.headers.get("Authorization")
        if not header:
            self.rejections["missing_token"] += 1
            raise AuthError(401, "invalid_token", "An access token is required.",
                            f'Bearer realm="{_quote(self.realm)}"', reason="missing_token")
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise self._refuse("malformed_header")
        raw = raw.strip()
        try:
            verified = self.verifier.verify(raw)
        except TokenRejected as exc:
            if exc.reason == "keys_unavailable":  # not the client's fault: say so
                self.rejections[exc.reason] += 1
                raise AuthError(503, "unavailable", "The token cannot be checked right now.",
                                f'Bearer realm="{_quote(self.realm)}"', reason=exc.reason) from None
            raise self._refuse(exc.reason) from None
        return raw, verified

    def require(self, *scopes: str, roles: tuple[str, ...] = (), acr: str | None = None,
                max_age: int | None = None, revocation_sensitive: bool = False,
                ) -> Callable[[F], F]:
        """A valid token holding every scope and role, at least ``acr``, authenticated at most
        ``max_age`` seconds ago; ``revocation_sensitive`` also asks Tessera (introspection)."""
        if acr is not None and acr not in ACR_ORDER:
            raise ValueError(f"acr must be one of {ACR_ORDER}")
        if revocation_sensitive and self.introspector is None and self.feed is None:
            raise ValueError("revocation_sensitive routes need an introspector or a feed")

        def decorator(view: F) -> F:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                raw, verified = self.authenticate()
                if self.feed is not None:  # issue 23: no round trip; the feed's policy
                    self._check_feed(raw, verified, revocation_sensitive)  # when stale
                self._authorize(verified, scopes, roles, acr, max_age)
                if revocation_sensitive and self.feed is None:
                    assert self.introspector is not None
                    if not self.introspector.active(raw):
                        raise self._refuse("revoked")
                g.tessera_token = verified
                self.accepted += 1
                return view(*args, **kwargs)

            return wrapper  # type: ignore[return-value]

        return decorator

    def _check_feed(self, raw: str, verified: VerifiedToken, sensitive: bool) -> None:
        """The feed's denylist; 503 while it cannot answer (not ready, stale and ``refuse``)."""
        assert self.feed is not None
        reason = self.feed.check_verified(verified, raw, sensitive=sensitive)
        if reason in UNAVAILABLE:
            self.rejections[reason] += 1
            raise AuthError(503, "unavailable", "Revocations cannot be checked right now.",
                            f'Bearer realm="{_quote(self.realm)}"', reason=reason)
        if reason is not None:
            raise self._refuse(reason)

    def _authorize(self, verified: VerifiedToken, scopes: tuple[str, ...], roles: tuple[str, ...],
                   acr: str | None, max_age: int | None) -> None:
        # Whoever holds a legacy HS256 secret writes any claims they like: such a token
        # proves who it names and nothing more (no scope, role, acr or step-up from it),
        # as Tessera treats its own legacy principals.
        claims = _LEGACY_CLAIMS if verified.legacy else verified.claims
        held = set(claims["scope"].split()) if isinstance(claims.get("scope"), str) else set()
        for scope in scopes:
            if scope not in held:
                self.rejections["insufficient_scope"] += 1
                raise AuthError(403, "insufficient_scope", "The token lacks a required scope.",
                                f'Bearer realm="{_quote(self.realm)}", error="insufficient_scope", '
                                f'scope="{_quote(scope)}"', {"scope": scope})
        listed = claims.get("roles")
        token_roles: list[Any] = listed if isinstance(listed, list) else []
        for role in roles:
            if role not in token_roles:
                self.rejections["forbidden"] += 1
                raise AuthError(403, "forbidden", f"This needs the role {role}.",
                                f'Bearer realm="{_quote(self.realm)}"', {"role": role})
        if acr is None and max_age is None:
            return
        token_acr = claims.get("acr")
        strong = acr is None or (token_acr in ACR_ORDER
                                 and ACR_ORDER.index(token_acr) >= ACR_ORDER.index(acr))
        auth_time = claims.get("auth_time")
        fresh = max_age is None or (isinstance(auth_time, (int, float))
                                    and self._clock() - auth_time <= max_age)
        if not (strong and fresh):
            self.rejections["insufficient_user_authentication"] += 1
            challenge = (f'Bearer realm="{_quote(self.realm)}", '
                         'error="insufficient_user_authentication", error_description='
                         f'"{"A stronger" if not strong else "A more recent"} '
                         'authentication is required"')
            if acr is not None:
                challenge += f', acr_values="{acr}"'
            if max_age is not None:
                challenge += f", max_age={max_age}"
            raise AuthError(401, "insufficient_user_authentication",
                            "A recent multi-factor authentication is required.", challenge,
                            {"acr_values": acr, "max_age": max_age})
