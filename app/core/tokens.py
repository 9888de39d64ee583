"""Tessera's access tokens (SPEC §3): signing, claim building, and verification with the
per-process cache.

The checks themselves are the strict verifier's (``tessera_verifier``, the
package in ``verifier/``, which resource servers install too): one verifier,
one set of reason codes. This module feeds it Tessera's keyring (a snapshot is
a ``KeySet``, the keyring a ``KeySource``) and keeps verified tokens in a
:class:`~app.core.token_cache.VerifiedTokenCache`. Signing is joserfc's.

Time on the verification path is one type: float seconds since the epoch.
"""

from __future__ import annotations

import functools
import json
import secrets
from typing import Any, Protocol, TypeVar

from joserfc import jws
from joserfc.util import json_b64encode, urlsafe_b64encode
from tessera_verifier import (
    ACCESS_PROFILE,
    TokenPolicy,
    TokenProfile,
    TokenRejected,
    VerifiedToken,
    verify_compact,
)

from .keyring import KeyringSnapshot, SigningMaterial, signing_registry
from .token_cache import VerifiedTokenCache

__all__ = [
    "ACCESS_PROFILE",
    "ACCESS_TOKEN_TYPE",
    "KeyringSource",
    "TokenPolicy",
    "TokenProfile",
    "TokenRejected",
    "VerifiedToken",
    "VerifiedTokenCache",
    "access_claims",
    "sign_token",
    "verify_cached",
    "verify_token",
]

ACCESS_TOKEN_TYPE = "at+jwt"

E = TypeVar("E", bound=VerifiedToken)


class KeyringSource(Protocol):
    """What verification reads keys from: the ``Keyring``, or one snapshot (no reload)."""

    def current(self) -> KeyringSnapshot: ...
    def reload_for_unknown_kid(self) -> KeyringSnapshot: ...


def sign_token(
    signer: SigningMaterial, claims: dict[str, Any], typ: str = ACCESS_TOKEN_TYPE
) -> str:
    """Sign ``claims`` as a JWS compact token with the signer's one algorithm (ES256: the
    low-S signature, the only one verification accepts).

    Every part is joserfc's. For a key checked at load (``SigningMaterial.checked``:
    ES256, the access tokens' key) the token is assembled from joserfc's pieces: its
    header encoding (made once per kid), its base64url and its ES256 signer;
    ``serialize_compact`` re-checked the header and the key on every token, which cost
    more than the signature. tests/core/test_fast_signing.py holds the two paths to the
    same bytes, and the tokens to joserfc, PyJWT and the strict verifier.
    """
    payload = json.dumps(claims, separators=(",", ":")).encode()
    if signer.checked:
        signing_input = (_header_segment(signer.alg, signer.kid, typ) + b"."
                         + urlsafe_b64encode(payload))
        algorithm = signing_registry(signer.alg).get_alg(signer.alg)
        signature = urlsafe_b64encode(algorithm.sign(signing_input, signer.key))
        return (signing_input + b"." + signature).decode("ascii")
    header = {"alg": signer.alg, "kid": signer.kid, "typ": typ}
    return jws.serialize_compact(header, payload, signer.key,
                                 registry=signing_registry(signer.alg))


@functools.lru_cache(maxsize=64)
def _header_segment(alg: str, kid: str, typ: str) -> bytes:
    """The protected header's segment, encoded by joserfc (as ``serialize_compact`` does)."""
    return json_b64encode({"alg": alg, "kid": kid, "typ": typ})


def verify_token(
    token: str, keys: KeyringSource, policy: TokenPolicy, now: float, *,
    profile: TokenProfile = ACCESS_PROFILE,
) -> VerifiedToken:
    """Verify ``token`` (SPEC §3 steps 1-5) against ``keys`` or raise TokenRejected."""
    return verify_compact(token, keys.current(), policy, now, source=keys, profile=profile)


def verify_cached(
    token: str, keys: KeyringSource, policy: TokenPolicy, now: float,
    cache: VerifiedTokenCache[E], entry_type: type[E],
) -> E:
    """Verify an access token, or find it verified already: the cache's entry for it.

    ``entry_type`` is the class a newly verified token is built as (VerifiedToken or
    the caller's subclass). A cached token still passes the per-use checks (times,
    the legacy sunset) every time.
    """
    snapshot = keys.current()
    entry = cache.use(token, snapshot, policy, now)
    if entry is None:
        entry = verify_compact(token, snapshot, policy, now, source=keys,
                               headers=cache.headers, result=entry_type)
        cache.put(token, entry)
    return entry


def access_claims(
    *,
    issuer: str,
    audience: str,
    user_id: int,
    session_id: str,
    client_id: str,
    scope: str,
    roles: list[str],
    auth_time: int,
    amr: list[str],
    acr: str,
    now: int,
    ttl: int,
) -> dict[str, Any]:
    """The claim set of a Tessera access token (SPEC §3), with a fresh random ``jti``."""
    return {
        "iss": issuer,
        "aud": audience,
        "sub": str(user_id),
        "exp": now + ttl,
        "nbf": now,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "client_id": client_id,
        "sid": session_id,
        "scope": scope,
        "roles": roles,
        "auth_time": auth_time,
        "amr": amr,
        "acr": acr,
    }
