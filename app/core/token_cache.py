"""The verified-token cache (SPEC §10): a token already verified in this process is
not verified again while it lives.

Keyed by the exact token text. Each entry is a
:class:`~tessera_verifier.VerifiedToken` of the caller's class (the security
layer's subclass keeps the principal and its revocation query in the same
object, so they are built once per token too, and a lookup touches one object).
Bounded twice: by entries and by an estimate of the bytes they hold
(``max_bytes``, default 128 MiB: about 28,000 access tokens of 570 bytes),
the oldest entry going first (it expires soonest). An entry is dropped at
its ``exp`` (by the caller's per-use check) and whenever its key is no
longer in the keyring (revoked, expired) or its phase no longer accepts it.

The byte estimate, ``3 * len(token) + 3000``: the token text (the key), the
claims parsed from it (about twice the text again), and a fixed cost for the
objects around them (the dict slot, the verified token, a principal and its
revocation query). Measured with tracemalloc: 4.7 KB per 572-byte access token
with its principal built; the estimate says 4.7 KB.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from tessera_verifier import (
    HeaderCache,
    TokenPolicy,
    TokenRejected,
    VerifiedToken,
    check_times,
    check_use,
)

from .keyring import KeyringSnapshot

__all__ = ["DEFAULT_CACHE_BYTES", "VerifiedTokenCache", "entry_bytes"]

DEFAULT_CACHE_BYTES = 128 * 1024 * 1024
_ENTRY_OVERHEAD = 3_000  # bytes per entry beyond its text (see the docstring)


E = TypeVar("E", bound=VerifiedToken)


def entry_bytes(token: str) -> int:
    """The estimated memory one cached token holds (see the module docstring)."""
    return 3 * len(token) + _ENTRY_OVERHEAD


class VerifiedTokenCache(Generic[E]):
    """Verified tokens by their text, bounded by ``max_entries`` and ``max_bytes``."""

    def __init__(self, max_entries: int = 50_000, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._entries: OrderedDict[str, E] = OrderedDict()
        self._max = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        # Writers only (a miss, a drop): two threads putting the same token must not
        # count its bytes twice. Hits read the dict without it.
        self._lock = threading.Lock()
        self.headers = HeaderCache()

    def get(self, token: str, snapshot: KeyringSnapshot) -> E | None:
        """The entry of ``token`` if its key still verifies under ``snapshot``."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        key = snapshot.keys.get(entry.kid)
        if key is None or key.alg != entry.alg or (
                entry.legacy and snapshot.phase == "asymmetric"):
            self.drop(token)
            return None
        return entry

    def use(self, token: str, snapshot: KeyringSnapshot, policy: TokenPolicy,
            now: float) -> E | None:
        """``get`` and the per-use checks (times, the legacy sunset) in one call: the
        hot path of every request with a token seen before. A token that fails them
        is dropped and TokenRejected raised; None when it is not (or no longer) here."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        key = snapshot.keys.get(entry.kid)
        if key is None or key.alg != entry.alg or (
                entry.legacy and snapshot.phase == "asymmetric"):
            self.drop(token)
            return None
        try:
            if entry.legacy:
                check_use(entry, policy, now)
            else:  # check_use minus its legacy branch: one call less on the hot path
                check_times(entry, now, policy.leeway)
        except TokenRejected:
            self.drop(token)
            raise
        return entry

    def put(self, token: str, entry: E) -> None:
        """Keep ``entry`` for ``token``, evicting the oldest beyond either bound."""
        with self._lock:
            if self._entries.pop(token, None) is None:
                self._bytes += entry_bytes(token)
            self._entries[token] = entry
            while len(self._entries) > self._max or (
                    self._bytes > self._max_bytes and len(self._entries) > 1):
                old, _ = self._entries.popitem(last=False)
                self._bytes -= entry_bytes(old)

    def drop(self, token: str) -> None:
        """Forget ``token`` (no longer usable)."""
        with self._lock:
            if self._entries.pop(token, None) is not None:
                self._bytes -= entry_bytes(token)

    def clear(self) -> None:
        """Forget every token."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def bytes(self) -> int:
        """The estimated memory the entries hold."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
