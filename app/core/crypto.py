"""Secrets at rest: AES-256-GCM under the key-encryption key (SPEC §4, §7)."""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SealError", "seal", "unseal", "sha256_hex", "constant_time_equal"]

_VERSION = b"\x01"
_NONCE_BYTES = 12


class SealError(Exception):
    """Ciphertext could not be opened: wrong key, wrong purpose, or tampered."""


def seal(key: bytes, plaintext: bytes, purpose: str) -> bytes:
    """Encrypt ``plaintext``; ``purpose`` is bound as associated data (e.g. "signing-key:<kid>")."""
    nonce = os.urandom(_NONCE_BYTES)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, purpose.encode())


def unseal(key: bytes, sealed: bytes, purpose: str) -> bytes:
    """Decrypt what :func:`seal` made with the same key and purpose, or raise SealError."""
    if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _VERSION:
        raise SealError("not a sealed value")
    nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, purpose.encode())
    except InvalidTag:
        raise SealError("cannot open sealed value (wrong key-encryption key?)") from None


def sha256_hex(value: str | bytes) -> str:
    """Hex SHA-256, for storing high-entropy tokens by hash."""
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets without leaking where they differ."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
