"""PostgreSQL ``LISTEN``/``NOTIFY`` for the per-process revocation mirror.

Every transaction that writes a revocation also sends ``NOTIFY`` on
``CHANNEL`` with what it wrote (``notify_rows``); PostgreSQL delivers it when
that transaction commits, in commit order, to every listening connection.
Each worker keeps one: a check polls its socket (no round trip) and applies
what has arrived. The mirror listens before it loads the table, so a write
that commits during the load is either in the load or in a notification.

A connection can die without a word (a peer gone without a FIN). Every
``health_check`` seconds a check sends ``SELECT 1`` down the listening
connection and reads the answer on a later check; the mirror answers only
while its last answered health check is under two intervals old, and one
unanswered for a whole interval drops the connection (the mirror then loads
the table again on a new one).
"""

from __future__ import annotations

import json
import select as select_module
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..models import Revocation
from .revocation_local import Apply, MirrorRow, SqliteWatch, Watch, WatchFailed, loaded

__all__ = ["CHANNEL", "PostgresWatch", "notify_rows"]

CHANNEL = "tessera_revocations"
_PAYLOAD_MAX = 7000  # PostgreSQL refuses payloads of 8000 bytes or more
_DRAINS = 8  # reads of the socket per check (each up to ~16 kB); more: ask the database
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


def notify_rows(session: Session, rows: Sequence[MirrorRow]) -> None:
    """Queue NOTIFYs carrying ``rows`` in the session's transaction (sent at commit)."""
    chunk: list[MirrorRow] = []
    size = 0
    for row in rows:
        size += len(row[1]) + 40
        chunk.append(row)
        if size >= _PAYLOAD_MAX:
            session.execute(_NOTIFY, {"channel": CHANNEL, "payload": json.dumps(chunk)})
            chunk, size = [], 0
    if chunk:
        session.execute(_NOTIFY, {"channel": CHANNEL, "payload": json.dumps(chunk)})


def _parse(payload: bytes) -> list[MirrorRow]:
    rows = json.loads(payload)
    return [(str(kind), str(value), int(cutoff), int(expires))
            for kind, value, cutoff, expires in rows]


class PostgresWatch:
    """One listening connection, drained without blocking on every check."""

    def __init__(self, engine: Engine, health_check: float = 1.0) -> None:
        self._engine = engine
        self._interval = health_check
        self._conn: psycopg.Connection[Any] | None = None
        self._pgconn: Any = None
        self._poller: Any = None
        self._proven_at = 0.0
        self._next_check = 0.0
        self._ping_sent: float | None = None

    def start(self, apply: Apply, now: datetime, max_rows: int) -> None:
        """Listen first, then load: every later commit reaches us as a notification."""
        try:
            self._listen()
        except (psycopg.Error, SQLAlchemyError) as exc:
            raise WatchFailed(type(exc).__name__) from None
        with Session(self._engine) as session:
            rows = session.execute(select(Revocation.kind, Revocation.value,
                                          Revocation.not_before, Revocation.expires_at)
                                   .where(Revocation.expires_at > now)
                                   .limit(max_rows + 1)).all()
        apply(loaded(rows, max_rows))
        self._proven(time.monotonic())

    def _listen(self) -> None:
        # One of the engine's own connections (its connect arguments and hooks applied),
        # taken out of the pool for good; after LISTEN only the libpq layer is used, so
        # no query can block a check.
        fairy = self._engine.raw_connection()
        conn = fairy.driver_connection  # (gone from the proxy once detached)
        fairy.detach()  # ours now: closed by close(), never returned to the pool
        assert isinstance(conn, psycopg.Connection)
        self._conn = conn
        conn.rollback()  # a pre-ping may have left a transaction open
        conn.autocommit = True
        conn.execute(f"LISTEN {CHANNEL}")
        pgconn = self._pgconn = conn.pgconn
        pgconn.nonblocking = 1
        poller = select_module.poll()
        poller.register(pgconn.socket, select_module.POLLIN | select_module.POLLPRI)
        self._poller = poller

    def fresh(self, apply: Apply) -> bool:
        """Apply the notifications that have arrived; False while unproven."""
        now = time.monotonic()
        try:
            if now >= self._next_check:
                self._check_health(now)
            # A read takes what the buffer holds; still readable after that means more
            # came (or the server closed it: the next read raises). A notification left
            # unread may be a revocation: after _DRAINS reads this check is not fresh.
            for _ in range(_DRAINS):
                if not self._poller.poll(0):
                    break
                self._drain(apply)
            else:
                if self._poller.poll(0):
                    return False
        except psycopg.Error as exc:
            raise WatchFailed(type(exc).__name__) from None
        return now - self._proven_at <= 2 * self._interval

    def _drain(self, apply: Apply) -> None:
        pgconn = self._pgconn
        pgconn.consume_input()  # raises OperationalError when the connection broke
        if pgconn.status != pq.ConnStatus.OK:
            raise WatchFailed("listening connection lost")
        if self._ping_sent is not None and not pgconn.is_busy():
            while pgconn.get_result() is not None:
                pass
            self._proven(self._ping_sent)
            self._ping_sent = None
        # Last: libpq parses what follows the health check's answer only as the answer
        # is collected, so a notification read with it is queued there, not before; the
        # socket is empty then, and no later check would come back for it.
        while (notice := pgconn.notifies()) is not None:
            apply(_parse(notice.extra))

    def _check_health(self, now: float) -> None:
        """Send a ``SELECT 1`` when one is due; fail when the last went unanswered."""
        if self._ping_sent is not None:
            if now - self._ping_sent > self._interval:
                raise WatchFailed("no answer to the health check")
            return
        if now - self._proven_at < self._interval:
            return
        self._pgconn.send_query(b"SELECT 1")
        self._pgconn.flush()
        self._ping_sent = now

    def _proven(self, when: float) -> None:
        self._proven_at, self._next_check = when, when + self._interval

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._pgconn = self._poller = None


def watch_for(engine: Any) -> Callable[[], Watch] | None:
    """How a mirror over ``engine`` learns of other connections' commits, if it can."""
    name = engine.dialect.name
    if name == "postgresql":
        return lambda: PostgresWatch(engine)
    if name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        return lambda: SqliteWatch(engine)
    return None
