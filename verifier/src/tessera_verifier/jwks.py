"""Tessera's public keys, fetched from its JWKS and kept fresh (SPEC §3 step 4, §4).

:class:`JwksCache` holds the key set as Tessera publishes it (standby, active,
retired keys; a revoked or expired key simply disappears). It follows the JWKS's
``Cache-Control`` and ``ETag`` through :class:`~tessera_verifier.fetch.CachedDocument`,
refreshes in the background before the copy expires, and keeps serving the last
good set while Tessera cannot be reached. A kid it does not know triggers one
refetch, single-flight (concurrent callers share it) and at most once per
``unknown_kid_cooldown`` seconds, so a flood of random kids costs one request.

The bound within which a key revoked on Tessera stops verifying here is
``KEYRING_REFRESH`` (Tessera) + ``min(max-age, max_refresh)`` (here).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .fetch import CachedDocument, Reply, http_get

__all__ = ["JwksCache", "public_jwks"]

log = logging.getLogger("tessera_verifier.jwks")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})


def public_jwks(document: Any) -> dict[str, dict[str, Any]]:
    """``{"keys": [...]}`` → public JWKs by kid; keys without a kid, or carrying private or
    symmetric material, are left out (a JWKS must never turn into an HMAC secret)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise TypeError("not a JWK set")
    keys: dict[str, dict[str, Any]] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("kty") not in ("EC", "RSA") or _PRIVATE_MEMBERS & set(jwk):
            log.warning("JWKS key %s skipped: not a public EC or RSA key", jwk.get("kid"))
            continue
        keys[jwk["kid"]] = jwk
    return keys


class JwksCache:
    """Keys by kid from a JWKS URL; ``build`` turns the public JWKs into what the caller uses."""

    def __init__(self, url: str, *, build: Callable[[dict[str, dict[str, Any]]], Mapping[str, Any]]
                 | None = None, unknown_kid_cooldown: float = 1.0, min_refresh: float = 1.0,
                 max_refresh: float = 300.0, default_max_age: float = 60.0, timeout: float = 3.0,
                 background: bool = True,
                 get: Callable[[str, dict[str, str], float], Reply] = http_get) -> None:
        make = build or (lambda keys: keys)
        self.document = CachedDocument(
            url, lambda doc: make(public_jwks(doc)), min_refresh=min_refresh,
            max_refresh=max_refresh, default_max_age=default_max_age, timeout=timeout,
            background=background, get=get)
        self._cooldown = unknown_kid_cooldown
        self._last_unknown = float("-inf")
        self._unknown_lock = threading.Lock()
        self.unknown_kid_refetches = 0  # refetches caused by an unknown kid
        self.unknown_kid_throttled = 0  # unknown kids answered without a refetch (cooldown)

    @property
    def stats(self) -> dict[str, Any]:
        """Counters and state for metrics and health pages."""
        s = self.document.stats
        return {"fetches": s.fetches, "not_modified": s.not_modified, "updates": s.updates,
                "failures": s.failures, "stale_serves": s.stale_serves,
                "stale": self.document.stale,
                "age_seconds": self.document.age,
                "unknown_kid_refetches": self.unknown_kid_refetches,
                "unknown_kid_throttled": self.unknown_kid_throttled}

    def keys(self) -> Mapping[str, Any]:
        """The current key set (fetched on first use)."""
        return self.document.value()  # type: ignore[no-any-return]

    def get(self, kid: str) -> Any | None:
        """The key ``kid`` names, refetching once (single-flight, cooled down) if unknown."""
        key = self.keys().get(kid)
        if key is not None:
            return key
        log.info("unknown kid %r", kid[:64])
        return self.refetch_for_unknown_kid().get(kid)

    def refetch_for_unknown_kid(self) -> Mapping[str, Any]:
        """Refetch the JWKS because a token named a kid it lacks, unless one was refetched
        for that reason less than ``unknown_kid_cooldown`` seconds ago; the key set after."""
        asked_at = time.monotonic()
        with self._unknown_lock:
            if asked_at - self._last_unknown < self._cooldown:
                # Within the cooldown: another caller refetched a moment ago (or was doing
                # so: we waited for its lock), so its answer is the one to use.
                self.unknown_kid_throttled += 1
                return self.keys()
            self._last_unknown = time.monotonic()
            self.unknown_kid_refetches += 1
            self.document.refresh_if_idle(asked_at)
        return self.keys()

    def close(self) -> None:
        """Stop the background refresh."""
        self.document.close()
