"""A per-process mirror of the revocation keys, kept exact by Redis (SPEC §10).

Redis 7.0's server-assisted client-side caching in broadcast mode tells this
process about every change to a key under ``tessera:rev:``: one connection
subscribes to ``__redis__:invalidate``, another turns ``CLIENT TRACKING on
REDIRECT <subscriber> BCAST PREFIX tessera:rev:`` on. Redis queues the
invalidation while it executes the write, before the writer gets its reply.
Both connections are made by the factory the app passes in, exactly as its
Redis client makes its own (TLS, unix socket, credentials, db, Sentinel).

Before every lookup the request thread drains whatever invalidations have
arrived (a non-blocking poll, no round trip), so a revocation whose call has
returned is honoured by the next check here. A value read by ``MGET`` is kept
only if no invalidation arrived while the read was in flight; a new token's
jti key is known absent without one (``revocation_born``). When either
connection fails, the mirror empties itself and stays off until tracking is
set up again; the checks then go to Redis (or the database) as before.

A connection can also die silently (a peer gone without a FIN, a frozen
network path). Every ``health_check`` seconds a lookup sends ``PING`` down
both connections; a reply proves that every invalidation Redis sent before it
has arrived. The mirror answers only while its last proof is under two
intervals old (past that it empties itself until a reply comes back), and a
``PING`` left unanswered for a whole interval drops tracking. Under Sentinel
the same check leaves a server the Sentinels no longer name as primary
(``revocation_mirror_checks.at_primary``).
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, Final

import redis
from redis.connection import AbstractConnection

from .revocation_born import WrittenSince
from .revocation_mirror_checks import at_primary, open_tracking

__all__ = ["RevocationMirror"]

log = logging.getLogger(__name__)


class _Unknown(Enum):
    """A key the mirror knows nothing about (an enum, so that mypy narrows on it)."""

    KEY = 0


_MISSING: Final = _Unknown.KEY
# What MGET returns for a key: redis-py types it bytes | str (bytes here: no decoding).
_Value = bytes | str | None


class RevocationMirror:
    """Known values of revocation keys (``None``: known absent), exact while ``live``."""

    def __init__(self, connect: Callable[[], AbstractConnection], prefix: str,
                 max_keys: int = 200_000, retry_seconds: float = 1.0,
                 health_check: float = 1.0) -> None:
        """``connect`` makes one new, unconnected RESP2 connection to the client's Redis."""
        self._new_connection = connect
        self._prefix = prefix
        self._max = max_keys
        self._retry = retry_seconds
        self._interval = health_check
        self._values: OrderedDict[str, _Value] = OrderedDict()
        self._lock = threading.Lock()
        self._subscriber: AbstractConnection | None = None
        self._tracker: AbstractConnection | None = None
        self._poller: select.poll | None = None  # both sockets: one syscall per drain
        self._next_attempt = 0.0
        self._proven_at = 0.0  # when the PING last answered on both connections was sent
        self._next_check = 0.0  # _proven_at + one interval: the hot path's one comparison
        self._ping_sent: float | None = None
        self._pongs_due = 0
        self.generation = 0  # bumped by every invalidation: guards reads in flight
        self.written = WrittenSince()  # answers a new token's jti key (revocation_born)

    @property
    def live(self) -> bool:
        return self._subscriber is not None

    # --- tracking set-up and tear-down

    def _connect(self) -> None:
        subscriber, tracker, poller, client_id = open_tracking(self._new_connection,
                                                               self._prefix)
        self._subscriber, self._tracker, self._poller = subscriber, tracker, poller
        self.written.restart()  # every write from now on comes as an invalidation
        self._proven(time.monotonic())
        self._ping_sent, self._pongs_due = None, 0
        log.info("revocation mirror: tracking %s* via client %s", self._prefix, client_id)

    def _drop(self, why: str) -> None:
        """Forget everything and stop trusting the mirror until tracking is back."""
        was_live = self.live
        for connection in (self._subscriber, self._tracker):
            if connection is not None:
                connection.disconnect()
        self._subscriber = self._tracker = None
        self._poller = None
        self._values.clear()
        self.written.stop()
        self.generation += 1
        self._next_attempt = time.monotonic() + self._retry
        if was_live:
            log.warning("revocation mirror off (%s); checks go to the store", why)

    def _ensure(self) -> bool:
        if self.live:
            return True
        if time.monotonic() < self._next_attempt:
            return False
        try:
            self._connect()
        except (redis.RedisError, OSError) as exc:
            self._drop(type(exc).__name__)
            return False
        self._values.clear()
        self.generation += 1
        return True

    # --- invalidations

    def _drain(self) -> None:
        """Apply every invalidation that has arrived; never blocks."""
        subscriber, tracker, poller = self._subscriber, self._tracker, self._poller
        if subscriber is None or tracker is None or poller is None:
            return
        # Every drain reads until redis-py's buffers are empty too, so in the
        # steady state one poll of the two sockets says "nothing arrived".
        if not poller.poll(0):
            return
        try:
            while tracker.can_read(timeout=0):
                # The tracking connection gets no replies but to our PINGs: anything
                # else (or end of file) means it broke, and tracking with it.
                if tracker.read_response() not in (b"PONG", "PONG") or not self._pongs_due:
                    raise redis.ConnectionError("tracking connection closed")
                self._pong()
            while subscriber.can_read(timeout=0):
                self._apply(subscriber.read_response())
        except (redis.RedisError, OSError) as exc:
            self._drop(type(exc).__name__)

    def _apply(self, message: Any) -> None:
        if not isinstance(message, list) or len(message) < 2:
            return
        if message[0] in (b"pong", "pong") and self._pongs_due:
            self._pong()
            return
        if len(message) < 3 or message[0] not in (b"message", "message"):
            return
        keys = message[2]
        self.generation += 1
        if keys is None:  # FLUSHALL / FLUSHDB: everything is gone
            self._values.clear()
            self.written.restart()
            return
        for key in keys:
            name = key.decode() if isinstance(key, bytes) else str(key)
            self._values.pop(name, None)
            self.written.wrote(name)

    # --- health check

    def _pong(self) -> None:
        self._pongs_due -= 1
        if self._pongs_due == 0 and self._ping_sent is not None:
            self._proven(self._ping_sent)
            self._ping_sent = None

    def _proven(self, when: float) -> None:
        self._proven_at, self._next_check = when, when + self._interval

    def _check_health(self, now: float) -> None:
        """Send a PING when one is due; drop tracking when the last went unanswered."""
        if self._ping_sent is not None:
            if now - self._ping_sent > self._interval:
                self._drop("no answer to PING")
            return
        if now - self._proven_at < self._interval:
            return
        if not at_primary(self._subscriber):
            self._drop("the Sentinels name another primary")
            return
        try:
            for connection in (self._subscriber, self._tracker):
                assert connection is not None
                connection.send_command("PING", check_health=False)
        except (redis.RedisError, OSError) as exc:
            self._drop(type(exc).__name__)
            return
        self._ping_sent, self._pongs_due = now, 2

    def _vouched(self, now: float) -> bool:
        """Whether the mirror may answer: live, with a recent proof that nothing was lost."""
        if not self.live:
            return False
        if now - self._proven_at <= 2 * self._interval:
            return True
        # Idle, or the line is slow: forget everything until a PONG proves it again.
        if self._values:
            self._values.clear()
            self.generation += 1
        # The written record goes on: the PONG that proves the mirror again arrives
        # after every invalidation sent before its PING, on the same connection.
        return False

    # --- the two calls the revocation check makes

    def lookup(self, keys: Sequence[str], born_key: str | None = None,
               born: float = 0.0) -> list[_Value] | None:
        """The values of ``keys`` if every one is known and the mirror is live, else None.
        ``born_key`` (a token's jti key, born at ``born``) is known absent when never
        written since tracking began (``revocation_born``)."""
        with self._lock:
            if not self._ensure():
                return None
            # The steady state costs one clock read and one comparison: the health
            # check runs only once an interval has passed since the last proof.
            now = time.monotonic()
            if now < self._next_check:
                self._drain()
                if self._subscriber is None:
                    return None
            else:
                self._check_health(now)
                self._drain()
                if not self._vouched(now):
                    return None
            found: list[_Value] = []
            for key in keys:
                value = self._values.get(key, _MISSING)
                if value is _MISSING:
                    if key != born_key or not self.written.never_written(key, born):
                        return None
                    value = None  # not kept: new tokens must not push known keys out
                else:
                    self._values.move_to_end(key)
                found.append(value)
            return found

    def begin_read(self) -> int:
        """Call before sending the MGET whose result may be stored."""
        with self._lock:
            return self.generation if self._vouched(time.monotonic()) else -1

    def store(self, keys: Sequence[str], values: Sequence[_Value], generation: int) -> None:
        """Keep what an MGET returned, unless an invalidation may have raced it."""
        with self._lock:
            self._drain()
            if generation < 0 or generation != self.generation or not self._vouched(
                    time.monotonic()):
                return
            for key, value in zip(keys, values, strict=False):  # one value per key (MGET)
                self._values[key] = value
                self._values.move_to_end(key)
            while len(self._values) > self._max:
                self._values.popitem(last=False)

    def forget(self, keys: Sequence[str]) -> None:
        """Drop ``keys`` this process has just written: its own next check must not wait
        for their invalidation, which comes on another connection (through a proxy or
        a lossy network, later than the write's reply)."""
        with self._lock:
            self.generation += 1  # an MGET already in flight may carry the old values
            for key in keys:
                self._values.pop(key, None)
                self.written.wrote(key)

    def __len__(self) -> int:
        return len(self._values)
