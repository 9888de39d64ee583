"""Tokens made by hand for the verifier's own tests: nothing of Tessera, only cryptography."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from issuer import FakeTessera
from tessera_verifier import Key, StaticKeySet, TokenPolicy
from tessera_verifier.keys import P256_ORDER

NOW = 1_800_000_000.0
ISSUER = "https://auth.example"
AUDIENCE = "https://auth.example/api"
SECRET = b"old-shared-secret-0123456789-abcdef"


def b64(data: bytes) -> str:
    """Canonical base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    """A JSON value, compact, as a base64url segment."""
    return b64(json.dumps(value, separators=(",", ":")).encode())


def es256(private: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """r||s with the low S, as Tessera signs."""
    r, s = decode_dss_signature(private.sign(data, ec.ECDSA(SHA256())))
    return r.to_bytes(32, "big") + min(s, P256_ORDER - s).to_bytes(32, "big")


def hs256(secret: bytes, data: bytes) -> bytes:
    """HMAC-SHA-256."""
    return hmac.new(secret, data, hashlib.sha256).digest()


def access_claims(**changes: Any) -> dict[str, Any]:
    """A valid access token's claims at NOW (SPEC §3), with ``changes`` (None deletes)."""
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "42", "exp": int(NOW) + 900, "nbf": int(NOW),
        "iat": int(NOW), "jti": "j-1", "client_id": "web", "sid": "s-1",
        "scope": "notes:read", "roles": ["user"], "auth_time": int(NOW), "amr": ["pwd"],
        "acr": "aal1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@dataclass
class World:
    """One EC key (kid ``k1``), one legacy secret, a key set and a policy."""

    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    policy: TokenPolicy = field(default_factory=lambda: TokenPolicy(
        issuer=ISSUER, audience=AUDIENCE, leeway=30, max_bytes=8192))

    @property
    def key(self) -> Key:
        """The verifying key of ``private``."""
        return Key.of("k1", self.private.public_key())

    @property
    def legacy(self) -> Key:
        """The legacy HS256 secret as a key."""
        return Key.of("legacy-1", SECRET)

    def keys(self, **options: Any) -> StaticKeySet:
        """A key set of the EC key and the legacy secret."""
        return StaticKeySet([self.key], [self.legacy], **options)

    def token(self, claims: dict[str, Any] | None = None, *,
              header: dict[str, Any] | None = None,
              sign: Callable[[bytes], bytes] | None = None) -> str:
        """A compact token: ES256 by ``private`` unless ``sign`` is given."""
        head = header if header is not None else {"alg": "ES256", "kid": "k1", "typ": "at+jwt"}
        signing_input = f"{b64json(head)}.{b64json(claims or access_claims())}"
        signer = sign or (lambda data: es256(self.private, data))
        return f"{signing_input}.{b64(signer(signing_input.encode()))}"

    def legacy_token(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        """An HS256 token signed with the legacy secret (no kid unless given)."""
        return self.token(claims, header=header or {"alg": "HS256", "typ": "JWT"},
                          sign=lambda data: hs256(SECRET, data))


@pytest.fixture
def world() -> World:
    """A fresh key and policy."""
    return World()


# --- the resource-server side (branch verifier): a stand-in Tessera over real HTTP


@pytest.fixture
def tessera() -> Iterator[FakeTessera]:
    """A stand-in Tessera on 127.0.0.1 (JWKS, metadata, introspection), closed afterwards."""
    fake = FakeTessera()
    yield fake
    fake.close()
