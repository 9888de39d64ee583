"""Keys that verify tokens, and where verification finds them (SPEC §3 steps 2-4).

A key has exactly one algorithm: an EC P-256 key verifies ES256 only, an RSA
key RS256 only, an HS256 secret HS256 only. Verification reads keys through two
small protocols so that any key store can feed it: Tessera's keyring snapshot,
a JWKS fetched by a resource server, or a fixed :class:`StaticKeySet`.

- :class:`KeySet`: the keys of one moment (by kid, the legacy secrets to try
  when an HS256 token names none, the kids known to be revoked or expired, and
  whether HS256 is accepted at all).
- :class:`KeySource`: hands out the current :class:`KeySet`, and a fresh one
  when a token names an unknown kid (its owner decides about single-flight and
  cooldown).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256

__all__ = [
    "ALGORITHMS",
    "Key",
    "KeySet",
    "KeySource",
    "StaticKeySet",
    "VerifyingKey",
    "es256_verifier",
    "hs256_verifier",
    "key_from_jwk",
    "rs256_verifier",
]

ALGORITHMS = ("ES256", "RS256", "HS256")

# ECDSA accepts (r, s) and (r, n - s) alike: two texts of one signature. Only the low
# one, s <= n/2, is accepted, so that every token has exactly one text: caches and
# anyone keying on the token text see one token once.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# Big-endian and 32 bytes like the S it is compared with, so bytes order is number order.
_P256_HALF_ORDER = (P256_ORDER // 2).to_bytes(32, "big")

Verifier = Callable[[bytes, bytes], bool]


class VerifyingKey(Protocol):
    """A key that verifies with its one algorithm; ``legacy`` is true for HS256 secrets."""

    @property
    def kid(self) -> str: ...
    @property
    def alg(self) -> str: ...
    @property
    def legacy(self) -> bool: ...
    @property
    def verify(self) -> Verifier: ...


class KeySet(Protocol):
    """The keys of one moment; compared by identity by the header cache."""

    @property
    def keys(self) -> Mapping[str, VerifyingKey]: ...
    @property
    def legacy_keys(self) -> Sequence[VerifyingKey]: ...
    @property
    def revoked_kids(self) -> AbstractSet[str]: ...
    @property
    def expired_kids(self) -> AbstractSet[str]: ...
    @property
    def accepts_hs256(self) -> bool: ...


class KeySource(Protocol):
    """Where key sets come from: the current one, and a fresh one for an unknown kid."""

    def current(self) -> KeySet: ...
    def reload_for_unknown_kid(self) -> KeySet: ...


def es256_verifier(public_key: ec.EllipticCurvePublicKey) -> Verifier:
    """ES256 (RFC 7518 §3.4): r||s of 32 bytes each, low S only, then cryptography's ECDSA."""
    algorithm = ec.ECDSA(SHA256())
    from_bytes = int.from_bytes

    def verify(signing_input: bytes, signature: bytes) -> bool:
        s = signature[32:]
        if len(signature) != 64 or s > _P256_HALF_ORDER:  # one comparison: the high twin
            return False
        der = encode_dss_signature(from_bytes(signature[:32], "big"), from_bytes(s, "big"))
        try:
            public_key.verify(der, signing_input, algorithm)
        except InvalidSignature:
            return False
        return True

    return verify


def rs256_verifier(public_key: rsa.RSAPublicKey) -> Verifier:
    """RS256 (RFC 7518 §3.3): RSASSA-PKCS1-v1_5 with SHA-256."""
    scheme, digest = padding.PKCS1v15(), SHA256()

    def verify(signing_input: bytes, signature: bytes) -> bool:
        try:
            public_key.verify(signature, signing_input, scheme, digest)
        except InvalidSignature:
            return False
        return True

    return verify


def hs256_verifier(secret: bytes) -> Verifier:
    """HS256 (RFC 7518 §3.2), compared in constant time."""
    def verify(signing_input: bytes, signature: bytes) -> bool:
        expected = hmac.new(secret, signing_input, hashlib.sha256).digest()
        return hmac.compare_digest(expected, signature)

    return verify


@dataclass(frozen=True)
class Key:
    """A :class:`VerifyingKey` built from a cryptography key or an HS256 secret."""

    kid: str
    alg: str
    verify: Verifier = field(repr=False, compare=False)
    legacy: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.alg not in ALGORITHMS:
            raise ValueError(f"unsupported algorithm {self.alg!r}")
        object.__setattr__(self, "legacy", self.alg == "HS256")

    @classmethod
    def of(cls, kid: str, material: Any) -> Key:
        """The key for ``material``: a P-256 or RSA public key, or HS256 secret bytes."""
        if isinstance(material, ec.EllipticCurvePublicKey):
            if not isinstance(material.curve, ec.SECP256R1):
                raise TypeError("only P-256 EC keys are supported (ES256)")
            return cls(kid, "ES256", es256_verifier(material))
        if isinstance(material, rsa.RSAPublicKey):
            return cls(kid, "RS256", rs256_verifier(material))
        if isinstance(material, bytes):
            return cls(kid, "HS256", hs256_verifier(material))
        raise TypeError(f"not a verification key: {type(material).__name__}")


def _b64_int(value: object, size: int | None = None) -> int:
    """A JWK number (RFC 7518 §6): unpadded, canonical base64url of its big-endian bytes;
    an EC coordinate exactly ``size`` bytes (§6.2.1.2: the full coordinate size)."""
    if not isinstance(value, str):
        raise TypeError("a JWK number must be a base64url string")
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)) if value.isascii() else b""
    # Decoding is lenient (padding, stray characters, loose final bits): encoding back
    # is the one strict test, and a key has a single spelling.
    if not raw or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != value:
        raise ValueError("a JWK number must be unpadded canonical base64url")
    if size is not None and len(raw) != size:
        raise ValueError(f"a P-256 coordinate is {size} bytes, got {len(raw)}")
    return int.from_bytes(raw, "big")


def key_from_jwk(jwk: Mapping[str, Any]) -> Key:
    """A public JWK (RFC 7517; EC P-256 or RSA) as a :class:`Key`; ``kid`` is required.

    An ``alg`` member, when present, must be the key type's one algorithm.
    """
    kid, kty = jwk.get("kid"), jwk.get("kty")
    if not isinstance(kid, str) or not kid:
        raise ValueError("a JWK needs a kid")
    if kty == "EC" and jwk.get("crv") == "P-256":
        numbers = ec.EllipticCurvePublicNumbers(_b64_int(jwk.get("x"), 32),
                                                _b64_int(jwk.get("y"), 32), ec.SECP256R1())
        key = Key.of(kid, numbers.public_key())
    elif kty == "RSA":
        key = Key.of(kid, rsa.RSAPublicNumbers(_b64_int(jwk.get("e")),
                                               _b64_int(jwk.get("n"))).public_key())
    else:
        raise ValueError(f"unsupported JWK: kty={kty!r} crv={jwk.get('crv')!r}")
    if jwk.get("alg", key.alg) != key.alg:
        raise ValueError(f"JWK {kid}: alg {jwk.get('alg')!r} does not fit its key")
    return key


class StaticKeySet:
    """A fixed :class:`KeySet`, which is its own :class:`KeySource` (nothing to reload).

    ``legacy`` keys (HS256 secrets) are tried in order when an HS256 token names no
    kid of ours; ``accepts_hs256`` false refuses every HS256 token (``legacy_disabled``).
    """

    def __init__(self, keys: Iterable[VerifyingKey], legacy: Iterable[VerifyingKey] = (), *,
                 revoked: Iterable[str] = (), expired: Iterable[str] = (),
                 accepts_hs256: bool = True) -> None:
        self.legacy_keys: tuple[VerifyingKey, ...] = tuple(legacy)
        self.keys: dict[str, VerifyingKey] = {k.kid: k for k in keys}
        for key in self.legacy_keys:
            self.keys.setdefault(key.kid, key)
        self.revoked_kids = frozenset(revoked)
        self.expired_kids = frozenset(expired)
        self.accepts_hs256 = accepts_hs256

    def current(self) -> StaticKeySet:
        """This set: it never changes."""
        return self

    def reload_for_unknown_kid(self) -> StaticKeySet:
        """This set: there is nowhere to reload from."""
        return self
