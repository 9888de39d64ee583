"""A software authenticator for the passkey API tests (issue 22).

It does what a platform authenticator does, with an EC P-256 key from
``cryptography``: "none" attestation (CBOR through py_webauthn's own
encoder), authenticatorData with rpIdHash, flags and a sign counter, and a
clientDataJSON naming the challenge and origin. Every field a test wants to
falsify (origin, RP id, counter, type) is a keyword argument.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.encode_cbor import encode_cbor

UP, UV, BE, AT = 0x01, 0x04, 0x08, 0x40  # authenticatorData flags (WebAuthn §6.1)


def b64u(data: bytes) -> str:
    return bytes_to_base64url(data)


class SoftAuthenticator:
    """One credential on one authenticator; ``rp_id``/``origin`` are where it believes it is."""

    def __init__(self, rp_id: str = "localhost", origin: str = "http://localhost", *,
                 backup_eligible: bool = False) -> None:
        self.rp_id, self.origin = rp_id, origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.backup_eligible = backup_eligible

    @property
    def id(self) -> str:
        return b64u(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return encode_cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge,
                           "origin": origin or self.origin, "crossOrigin": False}).encode()

    def _auth_data(self, flags: int, rp_id: str | None, count: int) -> bytes:
        if self.backup_eligible:
            flags |= BE
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        return rp_hash + bytes([flags]) + count.to_bytes(4, "big")

    def create(self, options: dict[str, Any], *, origin: str | None = None,
               rp_id: str | None = None) -> dict[str, Any]:
        """The answer to ``navigator.credentials.create(options)``, as JSON."""
        public_key = options["publicKey"]
        client_data = self._client_data("webauthn.create", public_key["challenge"], origin)
        attested = (bytes(16) + len(self.credential_id).to_bytes(2, "big")
                    + self.credential_id + self._cose_key())
        auth_data = self._auth_data(UP | UV | AT, rp_id, self.sign_count) + attested
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "response": {"clientDataJSON": b64u(client_data),
                             "attestationObject": b64u(attestation),
                             "transports": ["internal"]},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}

    def get(self, options: dict[str, Any], *, origin: str | None = None,
            rp_id: str | None = None, count: int | None = None) -> dict[str, Any]:
        """The answer to ``navigator.credentials.get(options)``; the counter moves on by one."""
        if count is None:
            self.sign_count += 1
            count = self.sign_count
        client_data = self._client_data("webauthn.get", options["publicKey"]["challenge"], origin)
        auth_data = self._auth_data(UP | UV, rp_id, count)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "response": {"clientDataJSON": b64u(client_data),
                             "authenticatorData": b64u(auth_data),
                             "signature": b64u(signature), "userHandle": None},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}
