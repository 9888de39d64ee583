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

import base64
import functools
import json
import secrets
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc import jws
from tessera_verifier import (
    ACCESS_PROFILE,
    TokenPolicy,
    TokenProfile,
    TokenRejected,
    VerifiedToken,
    verify_compact,
)
from tessera_verifier.keys import P256_ORDER

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

    ES256 is signed here with cryptography directly; RS256 and HS256 through joserfc.
    joserfc's ES256 path re-checked the header, the key and its curve, and looked the
    key's operation up, on every token: more than the signature itself. The direct path
    makes the same bytes (header and payload segments as joserfc's ``json_b64encode``,
    the raw r || s signature with the low S; tests/core/test_fast_signing.py holds it to
    joserfc and PyJWT).
    """
    payload = json.dumps(claims, separators=(",", ":")).encode()
    if signer.ec_private is not None:
        return _sign_es256(signer, payload, typ)
    header = {"alg": signer.alg, "kid": signer.kid, "typ": typ}
    return jws.serialize_compact(header, payload, signer.key,
                                 registry=signing_registry(signer.alg))


_ECDSA_SHA256 = ECDSA(SHA256())


@functools.lru_cache(maxsize=64)
def _header_segment(alg: str, kid: str, typ: str) -> bytes:
    """The protected header's segment, as joserfc encodes it (ASCII JSON, no spaces)."""
    text = json.dumps({"alg": alg, "kid": kid, "typ": typ}, ensure_ascii=True,
                      separators=(",", ":"))
    return _b64(text.encode("ascii"))


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _sign_es256(signer: SigningMaterial, payload: bytes, typ: str) -> str:
    signing_input = _header_segment(signer.alg, signer.kid, typ) + b"." + _b64(payload)
    r, s = decode_dss_signature(signer.ec_private.sign(signing_input, _ECDSA_SHA256))
    if s > P256_ORDER // 2:  # the low S: one text per signature (keyring._LowSES256)
        s = P256_ORDER - s
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return (signing_input + b"." + _b64(signature)).decode("ascii")


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
