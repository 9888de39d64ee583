"""A resource server's verifier: Tessera's keys from its JWKS, its phase from its metadata.

::

    verifier = Verifier("https://auth.example", "https://auth.example/api",
                        metadata_url="https://auth.example/.well-known/oauth-authorization-server",
                        legacy_secrets=[os.environ["OLD_HS256_SECRET"]])
    try:
        token = verifier.verify(raw)          # a VerifiedToken: claims, subject, legacy...
    except TokenRejected as exc:
        log.info("refused: %s", exc.reason)   # 401 invalid_token for the client

The checks are :func:`tessera_verifier.verify.verify_compact`'s, the very code
Tessera runs (SPEC §3 steps 1-5, same reason codes). Around them this module
adds what a service outside Tessera needs:

- keys from the JWKS (:class:`~tessera_verifier.jwks.JwksCache`: Cache-Control,
  ETag, background refresh, one cooled-down refetch for an unknown kid, the last
  good set served while Tessera is unreachable);
- dual mode: ``legacy_secrets`` (the old shared HS256 secrets) verify only while
  Tessera's published phase accepts HS256 (``tessera_migration`` in its metadata,
  followed by :class:`~tessera_verifier.phase.PhaseFollower`), and never after the
  published sunset; with no ``metadata_url`` they are never accepted.

Revocation (step 6) is not checked offline: see ``introspection``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .claims import ACCESS_PROFILE, TokenPolicy, TokenProfile
from .errors import TokenRejected
from .fetch import DocumentUnavailable
from .jwks import JwksCache
from .keys import Key, KeySet, StaticKeySet, VerifyingKey, key_from_jwk
from .phase import MigrationState, PhaseFollower
from .verify import HeaderCache, VerifiedToken, verify_compact

__all__ = ["Verifier"]

_WELL_KNOWN = "/.well-known/oauth-authorization-server"


def _keys_from_jwks(jwks: dict[str, dict[str, Any]]) -> dict[str, Key]:
    keys: dict[str, Key] = {}
    for kid, jwk in jwks.items():
        try:
            keys[kid] = key_from_jwk(jwk)
        except (ValueError, TypeError):
            continue  # a key we cannot use verifies nothing; the others still do
    return keys


class Verifier:
    """Verifies Tessera access tokens (and, while Tessera allows, legacy HS256 tokens)."""

    def __init__(self, issuer: str, audience: str, *, metadata_url: str | None = None,
                 jwks_url: str | None = None, legacy_secrets: Sequence[str] = (),
                 leeway: float = 30, max_bytes: int = 8192,
                 legacy_max_lifetime: float = 30 * 86400, legacy_subject_claim: str = "sub",
                 legacy_issuer: str | None = None, legacy_audience: str | None = None,
                 profile: TokenProfile = ACCESS_PROFILE, refresh_seconds: float = 60,
                 unknown_kid_cooldown: float = 1.0, background: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        if metadata_url is None and jwks_url is None:
            metadata_url = issuer.rstrip("/") + _WELL_KNOWN
        self.phase = PhaseFollower(metadata_url, max_refresh=refresh_seconds,
                                   background=background) if metadata_url else None
        self._jwks_args: dict[str, Any] = {
            "build": _keys_from_jwks, "max_refresh": refresh_seconds,
            "unknown_kid_cooldown": unknown_kid_cooldown, "background": background}
        # Without jwks_url, the metadata names it: read on first use, not here, so that a
        # service can start while Tessera is down (and answers 503 until it is reached).
        self._jwks = JwksCache(jwks_url, **self._jwks_args) if jwks_url is not None else None
        self._legacy: tuple[VerifyingKey, ...] = tuple(
            Key.of(f"legacy-{n}", secret.encode()) for n, secret in enumerate(legacy_secrets))
        self._policy_args: dict[str, Any] = {
            "issuer": issuer, "audience": audience, "leeway": leeway, "max_bytes": max_bytes,
            "legacy_max_lifetime": legacy_max_lifetime,
            "legacy_subject_claim": legacy_subject_claim, "legacy_issuer": legacy_issuer,
            "legacy_audience": legacy_audience}
        self._profile = profile
        self._clock = clock
        self._headers = HeaderCache()
        # (jwks mapping, migration state) -> (key set, policy): rebuilt only when either changes
        self._built: (tuple[Mapping[str, Any], MigrationState | None, KeySet, TokenPolicy]
                      | None) = None

    @property
    def jwks(self) -> JwksCache:
        """The key set cache (its ``stats`` are for metrics); DocumentUnavailable until the
        metadata naming it was read."""
        if self._jwks is None:
            assert self.phase is not None
            url = self.phase.metadata().jwks_uri
            if url is None:
                raise DocumentUnavailable("the metadata names no jwks_uri")
            self._jwks = JwksCache(url, **self._jwks_args)
        return self._jwks

    def migration(self) -> MigrationState | None:
        """The phase followed now (None: no metadata, legacy tokens never accepted)."""
        return self.phase.state() if self.phase is not None else None

    def legacy_allowed(self) -> bool:
        """Whether a legacy HS256 token may pass right now."""
        state = self.migration()
        return bool(self._legacy) and state is not None and state.legacy_allowed_at(self._clock())

    def _current(self) -> tuple[KeySet, TokenPolicy]:
        jwks = self.jwks.keys()
        state = self.migration()
        built = self._built
        if built is not None and built[0] is jwks and built[1] is state:
            return built[2], built[3]
        accepts = bool(self._legacy) and state is not None and state.phase in ("legacy", "dual")
        keys = StaticKeySet(jwks.values(), self._legacy if accepts else (), accepts_hs256=accepts)
        # The sunset is checked on every use by verify_compact, at this verifier's clock.
        sunset = state.legacy_sunset if state is not None else None
        policy = TokenPolicy(**self._policy_args, legacy_accept_until=sunset)
        self._built = (jwks, state, keys, policy)
        return keys, policy

    # KeySource, for verify_compact's one reload on an unknown kid
    def current(self) -> KeySet:
        """The key set of this moment (KeySource)."""
        return self._current()[0]

    def reload_for_unknown_kid(self) -> KeySet:
        """Refetch the JWKS once (single-flight, cooled down), then the key set (KeySource)."""
        self.jwks.refetch_for_unknown_kid()
        return self._current()[0]

    def verify(self, token: str) -> VerifiedToken:
        """Verify ``token`` now; raise :class:`TokenRejected` with the reason code
        (``keys_unavailable``: Tessera's JWKS was never reached, nothing can be verified)."""
        try:
            keys, policy = self._current()
        except DocumentUnavailable:
            raise TokenRejected("keys_unavailable") from None
        return verify_compact(token, keys, policy, self._clock(), source=self,
                              profile=self._profile, headers=self._headers)

    def claims(self, token: str) -> dict[str, Any]:
        """The verified token's claims (the plain-function form)."""
        return self.verify(token).claims

    def close(self) -> None:
        """Stop the background refreshes."""
        if self._jwks is not None:
            self._jwks.close()
        if self.phase is not None:
            self.phase.close()


def verify_token(token: str, verifier: Verifier) -> dict[str, Any]:
    """The claims of ``token`` or :class:`TokenRejected`: for frameworks other than Flask."""
    return verifier.claims(token)

