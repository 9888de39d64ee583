"""The per-process keyring: keys parsed once per load, refreshed, reloaded on unknown kids.

A :class:`KeyringSnapshot` is immutable: verification reads one snapshot and
never sees a half-loaded keyring. :class:`Keyring` swaps snapshots every
``refresh`` seconds, and at once (single-flight, with a cooldown) when a
token names a kid it does not know (SPEC §3 step 4, §4).

This module is the adapter between Tessera's keys and the strict verifier
(``tessera_verifier``): a snapshot is a ``KeySet`` (its keys, legacy secrets,
revoked and expired kids, whether the phase accepts HS256) and the
``Keyring`` a ``KeySource`` (the current snapshot, a reload for an unknown kid).
Keys are parsed with joserfc once per load; each carries the verifier's check
for its one algorithm.
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

from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwa import ESAlgorithm
from joserfc.jwk import ECKey, OctKey, RSAKey
from joserfc.jws import JWSRegistry
from tessera_verifier import es256_verifier, hs256_verifier, rs256_verifier
from tessera_verifier.keys import P256_ORDER

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

# ECDSA accepts (r, s) and (r, n - s) alike: two texts of one signature. Tessera signs
# and accepts only the low one, s <= n/2, so that every token has exactly one text
# (issue 16 item 10): caches and anyone keying on the token text see one token once.


class _LowSES256(ESAlgorithm):
    """joserfc's ES256 signer, with S replaced by n - S when it is the high one."""

    def sign(self, msg: bytes, key: ECKey) -> bytes:
        signature: bytes = super().sign(msg, key)
        s = int.from_bytes(signature[32:], "big")
        if s > P256_ORDER // 2:
            signature = signature[:32] + (P256_ORDER - s).to_bytes(32, "big")
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


def _verifier(alg: str, key: Any) -> Callable[[bytes, bytes], bool]:
    """The strict verifier's check for ``alg`` over joserfc's key (its cryptography
    object, or the secret's bytes), built once per load: ES256 refuses the high S."""
    op_key = key.get_op_key("verify")
    if alg == "ES256":
        return es256_verifier(op_key)
    return rs256_verifier(op_key) if alg == "RS256" else hs256_verifier(op_key)


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
        object.__setattr__(self, "verify", _verifier(self.alg, self.key))
        object.__setattr__(self, "legacy", self.alg == "HS256")


@dataclass(frozen=True)
class SigningMaterial:
    kid: str
    alg: str
    key: Any  # private joserfc key, or the OctKey of the first legacy secret
    # ES256: joserfc's key checks for signing (a private P-256 key) passed once, at load,
    # so ``tokens.sign_token`` need not repeat them per token (False: not checked).
    checked: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "checked", self.alg == "ES256" and _signs_es256(self.key))


def _signs_es256(key: Any) -> bool:
    """Whether joserfc's ES256 signer accepts ``key`` for signing (its own checks)."""
    try:
        _SIGNING["ES256"].get_alg("ES256").check_key(key)
    except (JoseError, AttributeError):  # joserfc refuses it, or it is no joserfc key
        return False
    return isinstance(key, ECKey) and key.is_private


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

    @property
    def accepts_hs256(self) -> bool:
        """Whether this phase verifies HS256 at all (``asymmetric`` refuses it)."""
        return self.phase != "asymmetric"

    def current(self) -> KeyringSnapshot:
        """This snapshot, as a key source of its own (for callers without a keyring)."""
        return self

    def reload_for_unknown_kid(self) -> KeyringSnapshot:
        """This snapshot: a snapshot alone cannot reload (the :class:`Keyring` can)."""
        return self

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

    def current(self) -> KeyringSnapshot:
        """The snapshot, reloaded first if older than the refresh interval."""
        snapshot = self._snapshot
        if snapshot is None or self._monotonic() - self._loaded_at >= self._refresh:
            snapshot = self._reload(wait=snapshot is None) or snapshot
        assert snapshot is not None
        return snapshot

    def reload_for_unknown_kid(self) -> KeyringSnapshot:
        """Reload now unless one happened within the cooldown (a flood of bad kids costs
        nothing)."""
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
        finally:
            self._lock.release()
        return snapshot
