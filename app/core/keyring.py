"""The per-process keyring: keys parsed once per load, refreshed, reloaded on unknown kids.

A :class:`KeyringSnapshot` is immutable: verification reads one snapshot and
never sees a half-loaded keyring. :class:`Keyring` swaps snapshots every
``refresh`` seconds, and at once (single-flight, with a cooldown) when a
token names a kid it does not know (SPEC §3 step 4, §4).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc.errors import SecurityWarning
from joserfc.jwa import ESAlgorithm
from joserfc.jwk import ECKey, OctKey, RSAKey
from joserfc.jws import JWSRegistry

__all__ = [
    "Keyring",
    "KeyringUnavailable",
    "KeyringSnapshot",
    "SigningMaterial",
    "VerificationKey",
    "build_snapshot",
    "legacy_kid",
    "signing_registry",
]

log = logging.getLogger(__name__)

# One registry per algorithm: a key can only ever be used with its own algorithm.
_ALGORITHMS = {name: JWSRegistry(algorithms=[name]).get_alg(name) for name in ("ES256", "RS256", "HS256")}

# ECDSA accepts (r, s) and (r, n - s) alike: two texts of one signature. Tessera signs
# and accepts only the low one, s <= n/2, so that every token has exactly one text
# (issue 16 item 10): caches and anyone keying on the token text see one token once.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# Big-endian and 32 bytes like the S it is compared with, so bytes order is number order.
_P256_HALF_ORDER = (_P256_ORDER // 2).to_bytes(32, "big")


class _LowSES256(ESAlgorithm):
    """joserfc's ES256 signer, with S replaced by n - S when it is the high one."""

    def sign(self, msg: bytes, key: ECKey) -> bytes:
        signature: bytes = super().sign(msg, key)
        s = int.from_bytes(signature[32:], "big")
        if s > _P256_ORDER // 2:
            signature = signature[:32] + (_P256_ORDER - s).to_bytes(32, "big")
        return signature


_SIGNING_ALGORITHMS = {**JWSRegistry.algorithms, "ES256": _LowSES256("ES256", "P-256", 256, True)}


class _SigningRegistry(JWSRegistry):
    """joserfc's algorithms with ES256 signing low S; a registry of its own (not
    ``JWSRegistry.register``) so that nothing else in the process changes."""

    algorithms = _SIGNING_ALGORITHMS


_SIGNING = {name: _SigningRegistry(algorithms=[name]) for name in ("ES256", "RS256", "HS256")}


def signing_registry(alg: str) -> JWSRegistry:
    """The joserfc registry that signs with ``alg`` alone (ES256: low S only)."""
    return _SIGNING[alg]


class KeyringUnavailable(Exception):
    """The loader could not read the keys (e.g. the database is down)."""


# DER pieces for a P-256 signature whose r and s both have a non-zero first byte (all but
# ~1 in 128): each is an INTEGER of 32 bytes, or 33 with a 0x00 first when its top bit is
# set. A low S never has its top bit set (s <= n/2 < 2**255).
_DER_SEQUENCE = (b"\x30\x44", b"\x30\x45")  # by the number of 0x00 added
_DER_INTEGER = (b"\x02\x20", b"\x02\x21\x00")  # by the integer's top bit


def _es256_der(r: bytes, s: bytes) -> bytes:
    """JWS r and low s (32 bytes each) → the DER cryptography verifies; the same bytes as
    encode_dss_signature."""
    if not r[0] or not s[0]:  # a shorter minimal integer: let cryptography encode it
        return encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    high_r = r[0] >> 7
    return b"".join((_DER_SEQUENCE[high_r], _DER_INTEGER[high_r], r, b"\x02\x20", s))


def _es256_verifier(public_key: ECKey) -> Callable[[bytes, bytes], bool]:
    """ES256 check with the key's operation object and hash parameters built once.

    The same steps as joserfc's ESAlgorithm.verify (JWS r||s → DER, then
    cryptography's ECDSA), minus the per-call object construction that made
    up a fifth of the verification time; and a high S is refused (see above).
    """
    op_key = public_key.get_op_key("verify")
    algorithm = ECDSA(SHA256())

    def verify(signing_input: bytes, signature: bytes) -> bool:
        s = signature[32:]
        if len(signature) != 64 or s > _P256_HALF_ORDER:  # one comparison: the high twin
            return False
        der = _es256_der(signature[:32], s)
        try:
            op_key.verify(der, signing_input, algorithm)
        except InvalidSignature:
            return False
        return True

    return verify


def _generic_verifier(alg: str, key: Any) -> Callable[[bytes, bytes], bool]:
    model = _ALGORITHMS[alg]
    return lambda signing_input, signature: bool(model.verify(signing_input, signature, key))


@dataclass(frozen=True)
class VerificationKey:
    """A key that may verify tokens: exactly one algorithm, parsed once."""

    kid: str
    alg: str
    key: Any  # joserfc ECKey / RSAKey (public) or OctKey (legacy secret)
    state: str  # standby, active, retired, or "legacy"
    retired_at: datetime | None = None
    # verify(signing_input, signature) -> bool, with this key's own algorithm only; a
    # field holding the checker rather than a method that calls it: one call less per token.
    verify: Callable[[bytes, bytes], bool] = field(init=False, repr=False, compare=False)
    # HS256 (the old system's secrets); derived from alg, stored as it is read per token.
    legacy: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.alg == "ES256":
            verifier = _es256_verifier(self.key)
        else:
            verifier = _generic_verifier(self.alg, self.key)
        object.__setattr__(self, "verify", verifier)
        object.__setattr__(self, "legacy", self.alg == "HS256")


@dataclass(frozen=True)
class SigningMaterial:
    kid: str
    alg: str
    key: Any  # private joserfc key, or the OctKey of the first legacy secret


@dataclass(frozen=True)
class KeyringSnapshot:
    """Everything verification and signing need, loaded at one moment."""

    keys: dict[str, VerificationKey]
    legacy_keys: tuple[VerificationKey, ...]
    signer: SigningMaterial | None  # asymmetric active key
    legacy_signer: SigningMaterial | None  # first legacy secret
    phase: str
    revoked_kids: frozenset[str]
    expired_kids: frozenset[str]
    jwks_body: bytes
    jwks_etag: str
    loaded_at: float = field(default_factory=time.monotonic)

    def current_signer(self) -> SigningMaterial | None:
        """The key that signs new tokens in this phase (legacy phase: HS256)."""
        return self.legacy_signer if self.phase == "legacy" else self.signer


def legacy_kid(secret: str) -> str:
    """A kid for a legacy secret: derived from its hash, never the secret itself."""
    return "legacy-" + hashlib.sha256(b"tessera-legacy-kid:" + secret.encode()).hexdigest()[:16]


def _legacy_key(secret: str) -> VerificationKey:
    with warnings.catch_warnings():
        # The old system chose the secret; a short one still has to keep working.
        warnings.simplefilter("ignore", SecurityWarning)
        key = OctKey.import_key(secret.encode())
    return VerificationKey(legacy_kid(secret), "HS256", key, "legacy")


def _public_key(jwk: dict[str, Any], alg: str) -> Any:
    cls = ECKey if alg == "ES256" else RSAKey
    return cls.import_key({k: v for k, v in jwk.items() if k not in ("kid", "alg", "use")})


def build_snapshot(
    rows: list[Any],
    legacy_secrets: tuple[str, ...],
    phase: str,
    open_private: Callable[[Any], Any],
    *,
    now: datetime,
    retired_lifetime: timedelta,
) -> KeyringSnapshot:
    """Parse database rows and legacy secrets into a snapshot (done once per load)."""
    keys: dict[str, VerificationKey] = {}
    published: list[dict[str, Any]] = []
    signer = None
    for row in rows:
        if row.state not in ("standby", "active", "retired"):
            continue
        if row.state == "retired" and row.retired_at and now - row.retired_at >= retired_lifetime:
            continue  # its tokens can no longer be valid: expired even if not yet marked
        jwk = json.loads(row.public_jwk)
        keys[row.kid] = VerificationKey(row.kid, row.alg, _public_key(jwk, row.alg), row.state,
                                        row.retired_at)
        published.append(jwk)
        if row.state == "active":
            signer = SigningMaterial(row.kid, row.alg, open_private(row))
    legacy = tuple(_legacy_key(s) for s in legacy_secrets)
    for key in legacy:
        keys.setdefault(key.kid, key)
    legacy_signer = SigningMaterial(legacy[0].kid, "HS256", legacy[0].key) if legacy else None
    body = json.dumps({"keys": published}, sort_keys=True, separators=(",", ":")).encode()
    return KeyringSnapshot(
        keys=keys,
        legacy_keys=legacy,
        signer=signer,
        legacy_signer=legacy_signer,
        phase=phase,
        revoked_kids=frozenset(r.kid for r in rows if r.state == "revoked"),
        expired_kids=frozenset(r.kid for r in rows if r.state in ("expired", "retired")
                               and r.kid not in keys),
        jwks_body=body,
        jwks_etag=hashlib.sha256(body).hexdigest()[:32],
    )


class Keyring:
    """Holds the current snapshot of one app in one process.

    ``loader`` builds a fresh snapshot (it talks to the database). Reads never
    wait for a reload in progress: one thread reloads, the others keep using
    the previous snapshot (single-flight).
    """

    def __init__(
        self,
        loader: Callable[[], KeyringSnapshot],
        *,
        refresh_seconds: float,
        cooldown_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._refresh = refresh_seconds
        self._cooldown = cooldown_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._snapshot: KeyringSnapshot | None = None
        self._loaded_at = float("-inf")
        self._last_forced = float("-inf")
        self.reloads = 0
        self.listeners: list[Callable[[KeyringSnapshot], None]] = []

    def current(self) -> KeyringSnapshot:
        """The snapshot, reloaded first if older than the refresh interval."""
        snapshot = self._snapshot
        if snapshot is None or self._monotonic() - self._loaded_at >= self._refresh:
            snapshot = self._reload(wait=snapshot is None) or snapshot
        assert snapshot is not None
        return snapshot

    def reload_for_unknown_kid(self) -> KeyringSnapshot:
        """Reload now unless one happened within the cooldown (a flood of bad kids costs nothing)."""
        if self._monotonic() - max(self._last_forced, self._loaded_at) < self._cooldown:
            return self.current()
        self._last_forced = self._monotonic()
        return self._reload(wait=True) or self.current()

    def invalidate(self) -> None:
        """Reload on the next read (after this process changed keys or the phase)."""
        self._loaded_at = float("-inf")

    def _reload(self, *, wait: bool) -> KeyringSnapshot | None:
        seen = self._loaded_at
        if not self._lock.acquire(blocking=wait):
            return None  # someone else is reloading; keep serving the old snapshot
        try:
            if self._loaded_at != seen:  # another thread reloaded while we waited
                return self._snapshot
            try:
                snapshot = self._loader()
            except KeyringUnavailable:
                if self._snapshot is None:
                    raise
                log.warning("keyring reload failed; serving the previous keys")
                self._loaded_at = self._monotonic()  # retry after the refresh interval
                return self._snapshot
            self._snapshot, self._loaded_at = snapshot, self._monotonic()
            self.reloads += 1
        finally:
            self._lock.release()
        for listener in self.listeners:
            listener(snapshot)
        return snapshot
