"""Wake-ups for long polls: an event reaches a waiting receiver at once.

The process that commits an event rings its own bell (every waiting thread of
that worker re-reads the database at once) and publishes one message on a Redis
channel when Redis is configured; every other worker keeps one subscriber thread
that rings its own bell on each message. Waiters also re-read the database every
``recheck`` seconds whatever happens: that is the delivery bound to receivers
waiting on another worker when Redis is absent (or a message was lost while a
subscriber reconnected).

A waiting poll holds one of the worker's threads, so few may wait at once
(``hold``): one per receiver and MAX_WAITING in all; a poll beyond that is
answered at once, as with ``returnImmediately`` (RFC 8936 §2.4 allows an empty
answer at any time).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

__all__ = ["CHANNEL", "MAX_WAITING", "EventBell"]

log = logging.getLogger(__name__)

CHANNEL = "tessera:secevents"
IDLE_AFTER = 10.0  # seconds without a waiting poll before a worker's subscriber stops
# Polls of one worker that may wait at once. The app is not told how many threads
# gunicorn gives it: half of gunicorn.conf.py's default (TESSERA_THREADS, 4), so that
# receivers never hold more than half of a default worker; with more threads the
# receivers beyond it poll without waiting (each such poll is short).
MAX_WAITING = 2


class EventBell:
    """One per app and process: a generation counter that waiters watch."""

    def __init__(self, client: redis.Redis | None, channel: str = CHANNEL,
                 max_waiting: int = MAX_WAITING) -> None:
        self._client = client
        self._channel = channel
        self._max_waiting = max_waiting
        self._holders: set[str] = set()  # the receivers with a poll waiting here
        self._cond = threading.Condition()
        self._generation = 0
        self._listener_pid: int | None = None  # the process whose subscriber runs
        self._waiting = 0
        self._idle_since = time.monotonic()

    @property
    def generation(self) -> int:
        """Read before querying: a ring after the read ends the next ``wait`` at once."""
        return self._generation

    def ring_here(self) -> None:
        """Wake every waiter of this process."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def ring(self) -> None:
        """Wake the waiters of this process, then those of every other worker (Redis)."""
        self.ring_here()
        if self._client is None:
            return
        try:
            self._client.publish(self._channel, b"1")
        except redis.RedisError as exc:  # the others find it at their next re-check
            log.warning("security events: cannot publish the wake-up (%s)", type(exc).__name__)

    @contextmanager
    def hold(self, receiver: str) -> Iterator[bool]:
        """Whether a poll of ``receiver`` may wait: false when one of its polls already
        waits in this process, or MAX_WAITING polls do; released on leaving."""
        with self._cond:
            held = receiver not in self._holders and len(self._holders) < self._max_waiting
            if held:
                self._holders.add(receiver)
        try:
            yield held
        finally:
            if held:
                with self._cond:
                    self._holders.discard(receiver)

    def wait(self, seen: int, timeout: float) -> None:
        """Return when the generation moves past ``seen`` or after ``timeout`` seconds."""
        with self._cond:
            self._waiting += 1
        self._ensure_listener()
        try:
            with self._cond:
                self._cond.wait_for(lambda: self._generation != seen, timeout=max(0.0, timeout))
        finally:
            with self._cond:
                self._waiting -= 1
                self._idle_since = time.monotonic()

    def _ensure_listener(self) -> None:
        # Started by the first waiter of each process: a thread made before a fork
        # (gunicorn --preload) does not survive into the workers.
        if self._client is None or self._listener_pid == os.getpid():
            return
        with self._cond:
            if self._listener_pid == os.getpid():
                return
            self._listener_pid = os.getpid()
        threading.Thread(target=self._listen, name="tessera-secevent-bell", daemon=True).start()

    def _idle(self) -> bool:
        """No poll has waited here for IDLE_AFTER seconds: the subscriber may go (the next
        waiter starts another, and re-reads the database once it is subscribed)."""
        with self._cond:
            if self._waiting or time.monotonic() - self._idle_since < IDLE_AFTER:
                return False
            self._listener_pid = None
            return True

    def _listen(self) -> None:
        assert self._client is not None
        while not self._idle():
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                try:
                    pubsub.subscribe(self._channel)
                    self.ring_here()  # messages may have been lost while (re)connecting
                    while not self._idle():
                        if pubsub.get_message(timeout=1.0) is not None:
                            self.ring_here()
                finally:
                    pubsub.close()
            except (redis.RedisError, OSError) as exc:
                log.warning("security events: wake-up channel lost (%s); re-checking the "
                            "database until it is back", type(exc).__name__)
                time.sleep(1.0)
