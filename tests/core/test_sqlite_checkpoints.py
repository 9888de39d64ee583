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

from app import sqlite_checkpoints
from app.sqlite_checkpoints import BACKSTOP_PAGES, FINISH_WAIT_MS, Checkpointer


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


def test_what_the_passive_step_leaves_is_finished_and_the_log_starts_again(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A reader's snapshot makes the passive step stop short of the log's end, so the
    # log could not start again; the reader leaves as the passive step returns.
    for _ in range(50):
        _write(engine, 1)
    reader = engine.connect()
    reader.exec_driver_sql("BEGIN")
    reader.exec_driver_sql("SELECT count(*) FROM t").scalar()
    for _ in range(50):
        _write(engine, 1)
    passes: list[tuple[int, ...]] = []
    pragma = sqlite_checkpoints._pragma

    def reader_leaves_after_the_passive_step(connection: Any, statement: str) -> Any:
        result = pragma(connection, statement)
        if "PASSIVE" in statement:
            passes.append(result)
            reader.exec_driver_sql("ROLLBACK")
            reader.close()
        return result

    monkeypatch.setattr(sqlite_checkpoints, "_pragma", reader_leaves_after_the_passive_step)
    Checkpointer(engine, interval=3600).checkpoint()
    (busy, logged, copied), = passes
    assert busy == 0 and 0 < copied < logged  # the passive step left 50 commits behind
    assert _rows_in_the_database_file(engine, tmp_path) == 100
    _write(engine, 1)  # the next commit starts the log from its beginning
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()[1] < 5


def test_the_finishing_step_waits_briefly_and_gives_the_connection_back_as_it_was(
        engine: Engine) -> None:
    # A reader keeps the log's end from being copied: the FULL step waits for it only
    # FINISH_WAIT_MS (not the connection's 5 s), then the pooled connection waits as before.
    _write(engine, 20)
    checkpointer = Checkpointer(engine, interval=3600)
    with engine.connect() as reader:
        reader.exec_driver_sql("BEGIN")
        reader.exec_driver_sql("SELECT count(*) FROM t").scalar()  # a snapshot held open
        _write(engine, 20)
        began = time.monotonic()
        checkpointer.checkpoint()
        assert time.monotonic() - began < FINISH_WAIT_MS / 1000 + 1.0  # not 5 s
        reader.exec_driver_sql("ROLLBACK")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    checkpointer.checkpoint()  # the reader gone: everything reaches the file
    with engine.connect() as connection:
        busy, logged, copied = connection.exec_driver_sql(
            "PRAGMA wal_checkpoint(PASSIVE)").one()
        assert (busy, copied) == (0, logged)


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
