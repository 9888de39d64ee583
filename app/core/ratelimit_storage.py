"""A ``limits`` storage on the database: counters every worker shares without Redis.

Without ``REDIS_URL`` each gunicorn worker used to count in its own memory, so
N workers allowed N times each limit. This storage keeps the fixed-window
counters of the ``limits`` library in the ``rate_limit_counters`` table of the
app's own database (SQLite or PostgreSQL), so every worker on every host that
shares the database shares the counters.

Contract (what ``limits.strategies.FixedWindowRateLimiter`` relies on):

- ``incr(key, expiry, amount)`` with ``amount > 0`` is one statement,
  ``INSERT ... ON CONFLICT (key) DO UPDATE ... RETURNING count``: a missing or
  lapsed window starts again at ``amount`` and ends ``expiry`` seconds from
  now; a live one grows by ``amount``. Concurrent calls on one key return
  distinct counts (the row lock on PostgreSQL, the write lock on SQLite), so
  at most ``limit`` callers see a count within the limit.
- ``incr`` with ``amount < 0`` (a refund) is one ``UPDATE ... RETURNING`` on a
  live window only, never below zero and never starting a window: a refund
  that arrives after its window ended gives nothing back to the next one.
- A lapsed row counts as absent; about one ``incr`` in ``PURGE_EVERY`` also
  deletes the lapsed rows (indexed on ``expires_at``).

Counter writes are their own short transactions on their own connection from
the engine's pool, never in the request's session. On PostgreSQL they commit
with ``synchronous_commit`` off: a counter is worth no disk flush (a crash may
lose the last milliseconds of counts, which a restart loses anyway).

Time is the wall clock (``time.time``), as in the ``limits`` library's own
storages; tests pass ``clock`` to move it.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from limits.storage import Storage
from sqlalchemy import Engine, bindparam, case, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ..models import RateLimitCounter
from ..models.base import UTCDateTime
from .compiled_sql import CompiledStatement

__all__ = ["PURGE_EVERY", "SCHEME", "DatabaseStorage"]

SCHEME = "tessera-db"
PURGE_EVERY = 256
log = logging.getLogger(__name__)

_KEY_LENGTH = 255  # the column's; longer keys are stored by their digest

_table = RateLimitCounter.__table__
_now = bindparam("now", type_=UTCDateTime())
_count = _table.c["count"]  # not .count: a name the column collection could shadow


def _upsert(dialect: str) -> CompiledStatement:
    """The one statement that adds ``amount`` to a live window or starts a new one."""
    stmt: Any  # either dialect's Insert: both have ON CONFLICT, their common base has not
    if dialect == "postgresql":
        stmt = postgresql.insert(_table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(_table)
    else:
        raise ValueError(f"rate-limit counters need SQLite or PostgreSQL, not {dialect}")
    stmt = stmt.values(
        key=bindparam("k"), count=bindparam("n"),
        expires_at=bindparam("until", type_=UTCDateTime()))
    lapsed = _table.c.expires_at <= _now
    return CompiledStatement(stmt.on_conflict_do_update(index_elements=[_table.c.key], set_={
        "count": case((lapsed, stmt.excluded["count"]), else_=_count + stmt.excluded["count"]),
        "expires_at": case((lapsed, stmt.excluded.expires_at), else_=_table.c.expires_at),
    }).returning(_count))


_live = (_table.c.key == bindparam("k")) & (_table.c.expires_at > _now)
# Every statement runs on the DBAPI cursor (app.core.compiled_sql): a counter write on
# every limited request cost more in Connection.execute than in the database.
# Several counters' refunds go in one executemany, without RETURNING (nobody reads the
# counts); a single one returns its count.
_update = update(_table).where(_live).values(
    count=case((_count + bindparam("n") < 0, 0), else_=_count + bindparam("n")))
_refund_each = CompiledStatement(_update)
_refund = CompiledStatement(_update.returning(_count))
_get = CompiledStatement(select(_count).where(_live))
_get_expiry = CompiledStatement(select(_table.c.expires_at).where(_live))
_clear = CompiledStatement(delete(_table).where(_table.c.key == bindparam("k")))
_purge = CompiledStatement(delete(_table).where(_table.c.expires_at <= _now))


class DatabaseStorage(Storage):
    """Fixed-window counters in ``rate_limit_counters``, registered as ``tessera-db://``.

    Built by ``limits.storage.storage_from_string("tessera-db://", engine=...)``
    (flask-limiter passes its ``storage_options`` on as keyword arguments).
    """

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012 - the shape limits' scheme registry reads

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, *,
                 engine: Engine, clock: Callable[[], float] = time.time,
                 **_options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self._engine = engine
        self._clock = clock
        self._upsert = _upsert(engine.dialect.name)
        self._postgres = engine.dialect.name == "postgresql"
        self._calls = itertools.count(1)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    def _at(self, seconds: float = 0) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC) + timedelta(seconds=seconds)

    def _write(self, stmt: CompiledStatement, params: dict[str, Any]) -> int | None:
        with self._engine.begin() as conn:
            if self._postgres:  # a counter is not worth a WAL flush (see the module doc)
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            row = stmt.first(conn, params)
        return None if row is None else int(row[0])

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` (a refund when negative) to the live window of ``key``; its count."""
        now = self._at()
        if amount < 0:
            return self._write(_refund, {"k": _stored(key), "n": amount, "now": now}) or 0
        count = self._write(self._upsert, {"k": _stored(key), "n": amount, "now": now,
                                           "until": self._at(expiry)})
        if next(self._calls) % PURGE_EVERY == 0:
            self._purge(now)
        assert count is not None  # an upsert always returns its row
        return count

    def refund(self, keys: Sequence[str]) -> None:
        """Give one back to the live window of each of ``keys``, in one transaction (a
        login's two counters cost one commit, not two); as ``incr(key, _, -1)`` each."""
        if not keys:
            return
        now = self._at()
        with self._engine.begin() as conn:
            if self._postgres:  # a counter is not worth a WAL flush (see the module doc)
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            _refund_each.run_many(conn, [{"k": _stored(key), "n": -1, "now": now}
                                         for key in keys])

    def _purge(self, now: datetime) -> None:
        try:
            self._write(_purge, {"now": now})
        except SQLAlchemyError:  # housekeeping: the hit is counted, the next purge will do
            log.warning("purging lapsed rate-limit counters failed", exc_info=True)

    def get(self, key: str) -> int:
        """The count of the live window of ``key`` (0 when none)."""
        with self._engine.connect() as conn:
            row = _get.first(conn, {"k": _stored(key), "now": self._at()})
        return 0 if row is None else int(row[0])

    def get_expiry(self, key: str) -> float:
        """When the live window of ``key`` ends (now when there is none), epoch seconds."""
        with self._engine.connect() as conn:
            row = _get_expiry.first(conn, {"k": _stored(key), "now": self._at()})
        return row[0].timestamp() if row is not None else self._clock()

    def check(self) -> bool:
        """Whether the database answers (flask-limiter asks before leaving its fallback)."""
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        """Forget every counter; how many rows went."""
        with self._engine.begin() as conn:
            return conn.execute(delete(_table)).rowcount

    def clear(self, key: str) -> None:
        """Forget the counter of ``key``."""
        self._write(_clear, {"k": _stored(key)})


def _stored(key: str) -> str:
    """The key as stored: itself, or its SHA-256 when longer than the column."""
    if len(key) <= _KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
