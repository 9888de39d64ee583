"""SQLite's WAL checkpoints off the request path (the embedded default, under gunicorn).

In WAL mode a commit appends pages to the write-ahead log, and the commit that
takes the log past ``wal_autocheckpoint`` pages (1,000 by default: a refresh
writes about 13) copies the log into the database file and syncs both inside
that request: a few milliseconds once every ~75 refreshes, enough to put a
refresh load's p99 over three times its p50. Under gunicorn each worker runs
a ``Checkpointer``: a thread that checkpoints once a second, and its
connections' ``wal_autocheckpoint`` is raised to ``BACKSTOP_PAGES``.

Each checkpoint has two steps. A ``PASSIVE`` one copies the log without
taking a lock a writer waits for (SQLite releases the GIL while it copies and
syncs), as far as the oldest reader's snapshot allows. When a reader held it
short of the end it found, a ``FULL`` one copies the rest, holding the write
lock for that short copy and its sync (1-5 ms), so the log is wholly in the
database file and the next commit starts it again from its beginning. It
waits at most ``FINISH_WAIT_MS`` for the writer and for readers on older
snapshots, and otherwise leaves the rest to the next second; writers queue
behind it meanwhile (SQLite's FULL mode), so a long read can hold them up
that long, once a second per worker at most.

Under a steady refresh load no reader holds the passive step short: it
copies the whole log it found, and only what commits appended while it ran
(~20 ms of them) is left. The finishing step is not run for those: run after
every passive step it restarted the log each second, but the commits queued
behind it put a refresh load's p99/p50 from 1.98 to 2.66 (median of 10
alternated rounds, same rate). So under load the log starts again when a
commit crosses the backstop, and that commit copies only what was appended
since the thread's last pass (at most a second of log: up to ~10,000 pages,
a ~20 ms refresh, at ~750 refreshes/s). The backstop is three seconds of log
at that rate, so such a refresh comes every three seconds, not every second
as with a backstop of 10,000 pages.

Outside gunicorn (tests, the CLI) nothing changes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["BACKSTOP_PAGES", "FINISH_WAIT_MS", "Checkpointer", "start_for"]

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 30_000  # ~120 MB of log: past it a commit checkpoints, as before
# How long the finishing step waits for the writer (a commit holds the lock well under
# 1 ms) and for readers of older snapshots; writers queue behind it meanwhile.
FINISH_WAIT_MS = 20


class Checkpointer:
    """A daemon thread checkpointing ``engine``'s database every ``interval`` seconds."""

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="tessera-sqlite-checkpoints",
                                        daemon=True)

    def start(self) -> Checkpointer:
        """Raise the connections' backstop (new ones, and none kept from before) and start."""
        event.listen(self._engine, "connect", _backstop)
        self._engine.dispose()  # pooled connections would keep the default threshold
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def checkpoint(self) -> None:
        """Copy the log out (passive, then finished under the write lock); a failure is
        logged once until one succeeds."""
        try:
            with self._engine.connect() as connection:
                _busy, logged, copied = _pragma(connection, "PRAGMA wal_checkpoint(PASSIVE)")
                if copied < logged:
                    _finish(connection)
        except (SQLAlchemyError, OSError) as exc:  # a locked or vanished file: try later
            if not self._failing:
                log.warning("SQLite checkpoint failed (%s); commits checkpoint past %d pages",
                            type(exc).__name__, BACKSTOP_PAGES)
            self._failing = True
            return
        self._failing = False

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.checkpoint()


def _pragma(connection: Connection, pragma: str) -> tuple[int, ...]:
    return tuple(connection.exec_driver_sql(pragma).one())


def _finish(connection: Connection) -> None:
    """A FULL checkpoint that waits at most FINISH_WAIT_MS for writers, then the
    connection's own wait again (it goes back to the pool)."""
    (waits,) = _pragma(connection, "PRAGMA busy_timeout")
    _pragma(connection, f"PRAGMA busy_timeout={FINISH_WAIT_MS}")
    try:
        _pragma(connection, "PRAGMA wal_checkpoint(FULL)")  # busy: the next second tries again
    finally:
        _pragma(connection, f"PRAGMA busy_timeout={int(waits)}")


def _backstop(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    cursor.close()


def start_for(app: object) -> Checkpointer | None:
    """A started Checkpointer for a Tessera app on SQLite (gunicorn's post_worker_init);
    None for anything else (another database, another WSGI app)."""
    if not isinstance(app, Flask) or "sqlalchemy" not in app.extensions:
        return None
    if not str(app.config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("sqlite"):
        return None
    with app.app_context():
        engine = app.extensions["sqlalchemy"].engine
    return Checkpointer(engine).start()
