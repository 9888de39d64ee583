"""The WAL checkpointer (app/sqlite_checkpoints.py) on a real SQLite file."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event

from app.sqlite_checkpoints import BACKSTOP_PAGES, Checkpointer


def _wal(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    event.listen(engine, "connect", _wal)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (v TEXT)")
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # the table, in the file
    yield engine
    engine.dispose()


def _rows_in_the_database_file(engine: Engine, tmp_path: Path) -> int:
    """Rows the database file holds by itself: what checkpoints have copied out of the log."""
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(str(engine.url.database), copy)
    with sqlite3.connect(copy) as connection:
        return int(connection.execute("SELECT count(*) FROM t").fetchone()[0])


def _write(engine: Engine, count: int) -> None:
    with engine.begin() as connection:
        for i in range(count):
            connection.exec_driver_sql("INSERT INTO t VALUES (?)", (f"row {i}",))


def _wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_without_it_a_small_log_stays_in_the_log(engine: Engine, tmp_path: Path) -> None:
    with engine.connect():  # an open connection, as a worker's pool keeps: no close-time copy
        _write(engine, 50)
        time.sleep(0.3)
        assert _rows_in_the_database_file(engine, tmp_path) == 0


def test_the_thread_copies_the_log_out_of_the_commits_way(engine: Engine, tmp_path: Path) -> None:
    checkpointer = Checkpointer(engine, interval=0.05).start()
    try:
        with engine.connect() as held:
            _write(engine, 50)
            assert _wait_for(lambda: _rows_in_the_database_file(engine, tmp_path) == 50)
            # New connections checkpoint in the commit only past the backstop.
            threshold = held.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
            assert threshold == BACKSTOP_PAGES
    finally:
        checkpointer.stop()


def test_a_failing_checkpoint_is_logged_once_a_streak(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "later"
    engine = create_engine(f"sqlite:///{home / 'db.sqlite'}")
    checkpointer = Checkpointer(engine, interval=3600)
    message = (f"SQLite checkpoint failed (OperationalError); commits checkpoint past "
               f"{BACKSTOP_PAGES} pages")
    try:
        checkpointer.checkpoint()  # no such directory: the file cannot be opened
        checkpointer.checkpoint()
        assert [r.message for r in caplog.records].count(message) == 1
        home.mkdir()
        checkpointer.checkpoint()  # works: the streak ends
        engine.dispose()
        shutil.rmtree(home)
        checkpointer.checkpoint()
        assert [r.message for r in caplog.records].count(message) == 2
    finally:
        engine.dispose()
