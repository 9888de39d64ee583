"""Secrets at rest: AES-256-GCM under the key-encryption key (SPEC §4, §7).

A sealed value names the key that sealed it, so the key-encryption key can be
rotated without downtime (see the KEK rotation runbook):

    v2 (today):  0x02 | key id (8 bytes) | nonce (12) | ciphertext+tag
    v1 (before): 0x01 | nonce (12) | ciphertext+tag          (still opened)

The key id is the first 8 bytes of a SHA-256 of the key under a fixed label:
it names a key without revealing anything usable about it. The header and the
``purpose`` are bound as associated data, so neither can be swapped.

``KEY_ENCRYPTION_KEY`` may hold several keys: :class:`Kek` is the first one
(the one that seals), so every function that takes "the KEK" as ``bytes``
keeps working, and it carries the whole list, which ``unseal`` opens with.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import CoreError

__all__ = [
    "Kek",
    "SealError",
    "constant_time_equal",
    "key_id",
    "seal",
    "sealed_key_id",
    "sha256_hex",
    "unseal",
]

_V1 = b"\x01"
_V2 = b"\x02"
_ID_BYTES = 8
_NONCE_BYTES = 12
_TAG_BYTES = 16


class SealError(CoreError):
    """Ciphertext could not be opened: wrong key, wrong purpose, or tampered."""

    code = "seal_failed"


class Kek(bytes):
    """The key-encryption keys, in order: its own value is the first (sealing) key;
    ``keys`` holds every key, the first included, that ``unseal`` may open with."""

    keys: tuple[bytes, ...]

    def __new__(cls, keys: Sequence[bytes]) -> Self:
        if not keys:
            raise ValueError("at least one key-encryption key is needed")
        kek = super().__new__(cls, keys[0])
        kek.keys = tuple(bytes(k) for k in keys)
        return kek

    def __repr__(self) -> str:  # never the key material
        return f"Kek({', '.join(key_id(k) for k in self.keys)})"


def _keys(key: bytes) -> tuple[bytes, ...]:
    return key.keys if isinstance(key, Kek) else (bytes(key),)


def _raw_id(key: bytes) -> bytes:
    return hashlib.sha256(b"tessera key-encryption key id\x00" + bytes(key)).digest()[:_ID_BYTES]


def key_id(key: bytes) -> str:
    """The public name of a key (hex), as sealed values and the runbook show it."""
    return _raw_id(key).hex()


def sealed_key_id(sealed: bytes) -> str | None:
    """The id of the key that sealed ``sealed``; None for a value from before ids (v1)."""
    if sealed[:1] == _V2 and len(sealed) >= 1 + _ID_BYTES:
        return sealed[1:1 + _ID_BYTES].hex()
    return None


def seal(key: bytes, plaintext: bytes, purpose: str) -> bytes:
    """Encrypt ``plaintext`` under the first key; ``purpose`` is bound as associated data
    (e.g. "signing-key:<kid>")."""
    sealing = _keys(key)[0]
    header = _V2 + _raw_id(sealing)
    nonce = os.urandom(_NONCE_BYTES)
    return header + nonce + AESGCM(sealing).encrypt(nonce, plaintext, header + purpose.encode())


def unseal(key: bytes, sealed: bytes, purpose: str) -> bytes:
    """Decrypt what :func:`seal` made with one of the keys and the same purpose, or raise
    SealError. A v2 value is opened by the key it names; a v1 value by whichever opens it."""
    if sealed[:1] == _V2 and len(sealed) >= 1 + _ID_BYTES + _NONCE_BYTES + _TAG_BYTES:
        return _open_v2(_keys(key), sealed, purpose)
    if sealed[:1] == _V1 and len(sealed) >= 1 + _NONCE_BYTES + _TAG_BYTES:
        nonce, body = sealed[1:1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES:]
        for candidate in _keys(key):
            try:
                return AESGCM(candidate).decrypt(nonce, body, purpose.encode())
            except InvalidTag:
                continue
        raise SealError("cannot open sealed value (wrong key-encryption key?)")
    raise SealError("not a sealed value")


def _open_v2(keys: tuple[bytes, ...], sealed: bytes, purpose: str) -> bytes:
    header = sealed[:1 + _ID_BYTES]
    wanted = header[1:]
    nonce = sealed[len(header):len(header) + _NONCE_BYTES]
    body = sealed[len(header) + _NONCE_BYTES:]
    for candidate in keys:
        if hmac.compare_digest(_raw_id(candidate), wanted):
            try:
                return AESGCM(candidate).decrypt(nonce, body, header + purpose.encode())
            except InvalidTag:
                raise SealError("cannot open sealed value (tampered, or another purpose)") from None
    raise SealError(f"sealed under key-encryption key {wanted.hex()}, which "
                    "KEY_ENCRYPTION_KEY does not hold")


def sha256_hex(value: str | bytes) -> str:
    """Hex SHA-256, for storing high-entropy tokens by hash."""
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets without leaking where they differ."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
