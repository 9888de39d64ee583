"""What the Redis mirror can say about a key it has never read: the token's own jti key.

A token's ``jti`` is drawn at random when the token is issued, so no revocation
of it can be written before the token's ``iat``. Broadcast tracking tells the
mirror about every key written under the prefix from the moment tracking
began, read or not. So for a token born after that moment, a jti key the
mirror has heard nothing about was never written: the token is not revoked by
jti, and the first request of a new token on this worker needs no round trip
(its session, user and key are answered as before, from the mirror or by
``MGET``).

``margin`` (60 s) covers clock differences between the instance that issued
the token and this one; revoke-all cutoffs already compare ``iat`` with a
moment on the cluster's clocks, so this asks nothing new of them. The record
restarts (the moment moves to now, the keys heard are forgotten) when tracking
is set up again, after a flush, and past ``max_keys`` keys heard; it stops
with tracking. A spell without proof (no PING answered lately) needs no
restart: the mirror answers nothing meanwhile, and the reply that proves it
again comes after every invalidation sent before it, on the same connection.
"""

from __future__ import annotations

import math
import time

__all__ = ["WrittenSince"]


class WrittenSince:
    """The revocation keys written since ``since`` (epoch seconds; infinity: no record)."""

    def __init__(self, margin: float = 60.0, max_keys: int = 100_000) -> None:
        self.margin = margin
        self._max = max_keys
        self._keys: set[str] = set()
        self.since = math.inf

    def restart(self) -> None:
        """Record from now on (tracking has just been set up, or the record may have a gap)."""
        self.since = time.time()
        self._keys.clear()

    def stop(self) -> None:
        """No record: tracking is off."""
        self.since = math.inf
        self._keys.clear()

    def wrote(self, key: str) -> None:
        """``key`` was written (an invalidation, or this process's own write)."""
        if len(self._keys) >= self._max:
            self.restart()  # keys written before the new moment no longer matter
        else:
            self._keys.add(key)

    def never_written(self, key: str, born: float) -> bool:
        """Whether ``key``, born at ``born``, cannot have been written: born after the
        record began (with the margin) and not heard of since."""
        return born >= self.since + self.margin and key not in self._keys
