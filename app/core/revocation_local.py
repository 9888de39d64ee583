"""A per-process copy of the database's revocations, for deployments without Redis.

Without Redis every protected request used to ask the database. This mirror
holds every live revocation of the ``revocations`` table in the worker's
memory and answers the check from there (a fresh token's ``jti`` included:
the copy is complete, so "absent here" means "absent there"). It is kept
exact by an invalidation that costs nothing per request:

- **SQLite** (``SqliteWatch``): ``PRAGMA data_version`` on a connection the
  mirror keeps for itself changes whenever any other connection has committed
  since it last asked. Every check asks (one pragma, a few microseconds); when
  it moved, the rows with a larger ``id`` than any seen are read. Every write
  to the table gives its row a new, larger ``id`` (``revocation_writes``), and
  SQLite's writers take turns, so ids grow in commit order.
- **PostgreSQL** (``revocation_listen.PostgresWatch``): the revoking
  transaction sends ``NOTIFY`` with what it wrote; one listening connection
  per worker receives it, and a check drains what has arrived without a
  round trip.

A mirror that cannot vouch for itself (its connection failed, the listener
has not answered its health check, the table holds more than ``max_rows``
live rows) answers nothing, and the check asks the database as before.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from ..models import Revocation
from .revocation_rules import RevocationQuery, micros, verdict

__all__ = ["LocalMirror", "MirrorRow", "SqliteWatch", "TooMany", "UNKNOWN", "WatchFailed",
           "mirror_row"]

log = logging.getLogger(__name__)

UNKNOWN: Final = object()  # the mirror cannot answer: ask the database
# kind, value, cutoff (microseconds, 0: none), expiry (microseconds)
MirrorRow = tuple[str, str, int, int]
Apply = Callable[[Iterable[MirrorRow]], None]
_PRUNE_SECONDS = 60.0


class TooMany(Exception):
    """More live revocations than the mirror may hold."""


class WatchFailed(Exception):
    """The watch's connection failed: its view may have missed a write."""


_FAILURES = (TooMany, WatchFailed, SQLAlchemyError, sqlite3.Error, OSError)


class Watch(Protocol):
    """How one database tells a mirror about other connections' writes."""

    def start(self, apply: Apply, now: datetime, max_rows: int) -> None:
        """Connect, load every live row through ``apply``; raise on failure, and raise
        ``TooMany`` before applying anything when more than ``max_rows`` are live (reading
        at most ``max_rows + 1``)."""

    def fresh(self, apply: Apply) -> bool:
        """Apply what changed since the last call; False: the mirror may not answer."""

    def close(self) -> None:
        """Let go of the connection (the mirror is off or rebuilt)."""


def mirror_row(kind: str, value: str, not_before: datetime | None,
               expires_at: datetime) -> MirrorRow:
    """One revocation (a write, or a row read back) as the mirrors keep it."""
    return (kind, value, micros(not_before) if not_before else 0, micros(expires_at))


def loaded(rows: Sequence[Any], max_rows: int) -> list[MirrorRow]:
    """Rows (kind, value, not_before, expires_at) read with ``LIMIT max_rows + 1``, as the
    mirror keeps them; ``TooMany`` when the limit was hit."""
    if len(rows) > max_rows:
        raise TooMany()
    return [mirror_row(*row) for row in rows]


def _why(exc: BaseException) -> str:
    """What to log of a failure: a type name (or a watch's own words), never a URL."""
    return str(exc) if isinstance(exc, WatchFailed) and str(exc) else type(exc).__name__


class LocalMirror:
    """Every live revocation, per process, exact while its watch says so."""

    def __init__(self, make_watch: Callable[[], Watch], max_rows: int = 100_000,
                 retry_seconds: float = 1.0) -> None:
        self._make_watch = make_watch
        # ~270 bytes an entry (measured with tracemalloc): at most ~27 MB per worker.
        self._max = max_rows
        self._retry = retry_seconds
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[int, int]] = {}
        self._watch: Watch | None = None
        self._pid = 0
        self._next_attempt = 0.0
        self._next_prune = 0.0
        self._too_many_logged = False
        self._start_failing = False  # a start failed since the last success (logged once)

    @property
    def live(self) -> bool:
        return self._watch is not None and self._pid == os.getpid()

    def __len__(self) -> int:
        return len(self._entries)

    def answer(self, lookup: RevocationQuery, now: datetime) -> object:
        """The verdict (None or a reason), or ``UNKNOWN``."""
        with self._lock:
            if not self._ensure(now):
                return UNKNOWN
            assert self._watch is not None
            try:
                fresh = self._watch.fresh(self._apply)
            except _FAILURES as exc:
                self._drop(_why(exc))
                return UNKNOWN
            if not fresh:
                return UNKNOWN
            now_us = micros(now)
            hits = []
            for pair in lookup.pairs:
                found = self._entries.get(pair)
                if found is not None and found[1] > now_us:
                    hits.append((pair[0], found[0] or 1))
            if time.monotonic() >= self._next_prune:
                self._prune(now_us)
        return verdict(lookup, hits)

    def close(self) -> None:
        """Let go of the watch's connection (the engine is being disposed of); the next
        check starts it again."""
        with self._lock:
            if self._watch is not None and self._pid == os.getpid():
                self._watch.close()
            self._watch = None
            self._entries.clear()
            self._next_attempt = 0.0

    def note(self, rows: Iterable[MirrorRow]) -> None:
        """This process's own committed writes: its next check must not wait for the watch."""
        with self._lock:
            if self.live:
                try:
                    self._apply(rows)
                except TooMany:
                    self._drop("TooMany")

    def _apply(self, rows: Iterable[MirrorRow]) -> None:
        """Keep the later cutoff and the longer life of each key (as the database does)."""
        entries = self._entries
        for kind, value, cutoff, expires in rows:
            key = (kind, value)
            known = entries.get(key)
            if known is None:
                entries[key] = (cutoff, expires)
            elif cutoff > known[0] or expires > known[1]:
                entries[key] = (max(cutoff, known[0]), max(expires, known[1]))
        if len(entries) > self._max:
            raise TooMany()

    def _ensure(self, now: datetime) -> bool:
        if self._watch is not None and self._pid == os.getpid():
            return True
        if self._pid != os.getpid():
            # A forked worker: the parent's connections are not ours to use or close.
            self._watch, self._pid, self._next_attempt = None, os.getpid(), 0.0
            self._entries.clear()
        if time.monotonic() < self._next_attempt:
            return False
        watch = self._make_watch()
        try:
            watch.start(self._apply, now, self._max)
        except _FAILURES as exc:
            watch.close()
            why = _why(exc)
            if why != "TooMany" and not self._start_failing:
                log.warning("revocation mirror (database) could not start (%s); checks ask "
                            "the database, retrying every %gs", why, self._retry)
            self._start_failing = True
            self._drop(why)
            return False
        self._watch, self._start_failing = watch, False
        log.info("revocation mirror (database): %d live revocations loaded", len(self._entries))
        return True

    def _drop(self, why: str) -> None:
        """Forget everything; answer nothing until the watch is started again."""
        if self._watch is not None:
            self._watch.close()
            log.warning("revocation mirror (database) off (%s); checks ask the database", why)
        self._watch = None
        self._entries.clear()
        # A table too big to hold stays so for a while: look again only once a minute.
        if why == "TooMany":
            self._next_attempt = time.monotonic() + _PRUNE_SECONDS
            if not self._too_many_logged:
                self._too_many_logged = True
                log.warning("revocation mirror (database): more than %d live revocations; "
                            "checks ask the database", self._max)
        else:
            self._next_attempt = time.monotonic() + self._retry

    def _prune(self, now_us: int) -> None:
        self._next_prune = time.monotonic() + _PRUNE_SECONDS
        expired = [key for key, (_, expires) in self._entries.items() if expires <= now_us]
        for key in expired:
            del self._entries[key]


_SINCE = (select(Revocation.id, Revocation.kind, Revocation.value, Revocation.not_before,
                 Revocation.expires_at))


_SINCE_SQL = "SELECT id, kind, value, not_before, expires_at FROM revocations WHERE id > ?"


def _stored_micros(raw: str) -> int:
    """A UTC datetime as SQLAlchemy stores it on SQLite (naive ISO text), in microseconds."""
    return micros(datetime.fromisoformat(raw).replace(tzinfo=UTC))


class SqliteWatch:
    """``PRAGMA data_version`` on a connection of its own, then the rows past the last id."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._raw: Any = None
        self._version: int | None = None
        self._max_id = 0

    def start(self, apply: Apply, now: datetime, max_rows: int) -> None:
        """Keep one connection (the pragma compares against that connection's last look)."""
        self._conn = self._engine.connect()
        self._raw = self._conn.connection.driver_connection
        self._version = self._pragma()  # before the reads: a later commit moves it again
        last = self._conn.execute(select(func.coalesce(func.max(Revocation.id), 0))).scalar()
        rows = self._conn.execute(_SINCE.where(Revocation.expires_at > now)
                                  .limit(max_rows + 1)).all()
        self._conn.rollback()
        mirrored = loaded([row[1:] for row in rows], max_rows)
        self._max_id = max([int(last or 0), *(row[0] for row in rows)])
        apply(mirrored)

    def _pragma(self) -> int:
        return int(self._raw.execute("PRAGMA data_version").fetchone()[0])

    def fresh(self, apply: Apply) -> bool:
        """One pragma; when another connection committed, read the rows it may have added
        (on the driver's connection: the ORM's statement machinery cost ~20 times more)."""
        version = self._pragma()
        if version == self._version:
            return True
        self._version = version  # first: a commit from here on moves it again
        rows = self._raw.execute(_SINCE_SQL, (self._max_id,)).fetchall()
        if rows:
            self._max_id = max(row[0] for row in rows)
            apply([(kind, value, _stored_micros(not_before) if not_before else 0,
                    _stored_micros(expires_at)) for _, kind, value, not_before, expires_at in rows])
        return True

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except (SQLAlchemyError, sqlite3.Error):
                pass  # closing a broken connection: nothing left to do
        self._conn = self._raw = None
