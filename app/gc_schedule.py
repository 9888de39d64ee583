"""Garbage collection in a long-running worker: full collections that stay short however
many tokens the verified-token cache holds.

A full collection stops the request in flight while it walks every tracked
object, and a worker's verified-token cache holds eight per token: with the
cache full (about 28,000 tokens) one walk took 100-190 ms, the p99 of the
first-seen loads. ``FreezeSchedule`` moves what has survived a while to the
permanent generation, which no automatic collection walks: every ``every``
requests it collects the young generations (cheap: the garbage of the last
requests) and freezes the survivors, so a full collection walks only what
arrived since the last freeze.

Frozen objects are still freed by reference counting (a token evicted from the
cache is gone at once); only a reference cycle that becomes garbage while
frozen waits: for instance the request another thread had in flight at the
freeze. Every ``reclaim_every`` freezes the schedule unfreezes and runs one
full collection, which frees those: one long walk per ``every *
reclaim_every`` requests (1,000,000 by default) instead of one every few
thousand first-seen tokens. What waits is small: about 25 objects per freeze
(20 freezes over 20,000 requests left 493 unreachable objects to the reclaim),
a few megabytes by the time of a reclaim.

gunicorn.conf.py calls ``request_done`` from its ``post_request`` hook;
``TESSERA_GC_FREEZE_EVERY`` sets ``every`` (0 turns the schedule off).
"""

from __future__ import annotations

import gc
import threading

__all__ = ["FreezeSchedule"]


class FreezeSchedule:
    """Freeze the survivors every ``every`` requests; reclaim every ``reclaim_every``
    freezes (see the module docstring)."""

    def __init__(self, every: int = 1_000, reclaim_every: int = 1_000) -> None:
        self.every = every
        self.reclaim_every = reclaim_every
        self._requests = 0
        self._freezes = 0
        self._lock = threading.Lock()  # post_request runs on every worker thread

    def request_done(self) -> None:
        """Count one request; freeze, or reclaim, when its turn has come."""
        if self.every <= 0:
            return
        with self._lock:
            self._requests += 1
            if self._requests < self.every:
                return
            self._requests = 0
            self._freezes += 1
            reclaim = self._freezes >= self.reclaim_every
            if reclaim:
                self._freezes = 0
        if reclaim:
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)  # the young generations' garbage, so that none of it is frozen
        gc.freeze()
