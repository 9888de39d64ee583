"""The per-process mirror of the revocations table (app/core/revocation_local, _listen).

Two engines on one database stand for two workers: one revokes, the other's
mirror must see it (SQLite: ``PRAGMA data_version``; PostgreSQL: ``NOTIFY``)
and answer without a statement on its own engine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from app.core import revocation_listen
from app.core.revocation import RevocationService, RevocationState
from app.core.revocation_listen import PostgresWatch, notify_rows
from app.core.revocation_local import (
    UNKNOWN,
    LocalMirror,
    MirrorRow,
    SqliteWatch,
    TooMany,
    Watch,
    WatchFailed,
)
from app.core.revocation_rules import RevocationQuery, micros
from app.models import User
from tests.support.databases import NOW, make_engine

HOUR = timedelta(hours=1)
SECOND = int(NOW.timestamp())


@pytest.fixture
def second(engine: Engine, tmp_path: Path) -> Iterator[Engine]:
    """Another worker's engine on the same database."""
    other = make_engine(tmp_path)
    yield other
    other.dispose()


_OPEN: list[Session] = []


@pytest.fixture(autouse=True)
def _close_sessions() -> Iterator[None]:
    """Each service's session ends with its test (PostgreSQL empties the tables next)."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def _service(engine: Engine) -> RevocationService:
    session = Session(engine)
    _OPEN.append(session)
    return RevocationService(session, None, state=RevocationState())


def _query(**facts: Any) -> RevocationQuery:
    values: dict[str, Any] = {"jti": None, "sid": None, "user_id": None, "iat": None,
                              "token_hash": None, **facts}
    return RevocationQuery.of(**values)


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_: seen.append(sql))
    return seen


def _eventually(service: RevocationService, query: RevocationQuery, want: str | None) -> str | None:
    """PostgreSQL delivers a NOTIFY a moment after the commit: ask for up to 5 s."""
    deadline = time.monotonic() + 5
    while True:
        found = service.check_query(query, NOW)
        if found == want or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_the_mirror_sees_another_connections_commit(engine: Engine, second: Engine) -> None:
    reader, writer = _service(engine), _service(second)
    assert reader.check_query(_query(jti="j1"), NOW) is None  # loads the mirror
    seen = _statements(engine)
    writer.revoke_jti("j1", NOW + HOUR, NOW)
    assert _eventually(reader, _query(jti="j1"), "token_revoked") == "token_revoked"
    assert reader.check_query(_query(jti="j2"), NOW) is None
    assert seen == []  # answered by the mirror: no statement on the reader's engine
    assert reader.state.local is not None and len(reader.state.local) == 1


def test_a_later_cutoff_written_elsewhere_reaches_the_mirror(engine: Engine,
                                                             second: Engine) -> None:
    reader, writer = _service(engine), _service(second)
    writer.revoke_user(7, NOW, NOW + HOUR)
    token = _query(user_id=7, sid="s", iat=SECOND + 30)
    assert reader.check_query(token, NOW) is None  # issued after the first cutoff
    seen = _statements(engine)
    writer.revoke_user(7, NOW + timedelta(minutes=1), NOW + HOUR)  # the same row, updated
    assert _eventually(reader, token, "user_revoked") == "user_revoked"
    assert seen == []


def test_purge_never_lets_an_id_be_handed_out_again(engine: Engine, second: Engine) -> None:
    reader, writer = _service(engine), _service(second)
    writer.revoke_jti("a", NOW + timedelta(minutes=1), NOW)
    writer.revoke_jti("b", NOW + timedelta(minutes=2), NOW)
    later = NOW + HOUR
    assert reader.check_query(_query(jti="c"), later) is None
    assert writer.purge(later) == 1  # "b" holds the largest id and stays
    writer.revoke_jti("c", later + HOUR, later)
    assert _eventually(reader, _query(jti="c"), "token_revoked") == "token_revoked"


def _watch(engine: Engine) -> Watch:
    if engine.dialect.name == "postgresql":
        return PostgresWatch(engine)
    return SqliteWatch(engine)


def test_a_mirror_over_its_limit_answers_nothing(engine: Engine, second: Engine) -> None:
    writer = _service(second)
    for jti in ("j1", "j2"):
        writer.revoke_jti(jti, NOW + HOUR, NOW)
    mirror = LocalMirror(lambda: _watch(engine), max_rows=1)
    assert mirror.answer(_query(jti="j1"), NOW) is UNKNOWN
    assert not mirror.live and len(mirror) == 0
    roomy = LocalMirror(lambda: _watch(engine), max_rows=2)
    try:
        assert roomy.answer(_query(jti="j1"), NOW) == "token_revoked"
        assert roomy.answer(_query(jti="j3"), NOW) is None
    finally:
        roomy.close()
    assert not roomy.live


def test_own_writes_are_seen_without_the_watch(engine: Engine) -> None:
    service = _service(engine)
    assert service.check_query(_query(jti="j1"), NOW) is None
    local = service.state.local
    assert local is not None
    service.revoke_jti("j1", NOW + HOUR, NOW)
    assert len(local) == 1  # noted at publish, before any watch reported it
    assert service.check_query(_query(jti="j1"), NOW) == "token_revoked"


def test_no_mirror_for_an_in_memory_database() -> None:
    memory = create_engine("sqlite://")
    User.metadata.create_all(memory)
    service = _service(memory)
    service.revoke_jti("j1", NOW + HOUR, NOW)
    assert service.check_query(_query(jti="j1"), NOW) == "token_revoked"  # the database
    assert service.state.local is None and not service.state.local_mirror
    _OPEN.pop().close()
    memory.dispose()


def test_an_oversized_table_is_refused_after_reading_one_row_too_many(
        engine: Engine, second: Engine) -> None:
    writer = _service(second)
    for n in range(5):
        writer.revoke_jti(f"j{n}", NOW + HOUR, NOW)
    loads: list[Any] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, params, *_: loads.append(
        params) if "expires_at >" in sql and "LIMIT" in sql.upper() else None)
    applied: list[list[MirrorRow]] = []
    watch = _watch(engine)
    try:
        with pytest.raises(TooMany):
            watch.start(lambda rows: applied.append(list(rows)), NOW, 2)
    finally:
        watch.close()
    assert applied == []  # refused before anything was kept
    assert len(loads) == 1  # one load, of at most max_rows + 1 rows
    values = loads[0].values() if isinstance(loads[0], dict) else loads[0]
    assert 3 in values
    mirror = LocalMirror(lambda: _watch(engine), max_rows=2)
    assert mirror.answer(_query(jti="j1"), NOW) is UNKNOWN  # the database answers instead
    assert _service(engine).check_query(_query(jti="j1"), NOW) == "token_revoked"


def test_a_backlog_of_notifications_never_lets_a_revoked_token_pass(
        engine: Engine, second: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY (PostgreSQL)")
    reader, writer = _service(engine), _service(second)
    assert reader.check_query(_query(jti="j0"), NOW) is None  # loads the mirror, listens
    # Far more than _DRAINS reads of the socket: ~280 kB of notifications (only sent,
    # nothing written), then the revocation that matters last.
    until = micros(NOW + HOUR)
    filler = [("jti", f"filler-{n:05d}-" + "x" * 80, 0, until) for n in range(2000)]
    with Session(second) as session:
        notify_rows(session, filler)
        session.commit()
    writer.revoke_jti("j0", NOW + HOUR, NOW)
    time.sleep(0.5)  # everything has reached the reader's socket
    assert reader.check_query(_query(jti="j0"), NOW) == "token_revoked"
    assert len(filler) > 20 * revocation_listen._DRAINS
    while _OPEN:  # the database answered: give its connection back before the pool goes
        _OPEN.pop().close()


def test_the_listener_is_one_of_the_engines_own_connections(tmp_path: Path,
                                                            engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY (PostgreSQL)")
    hooked = make_engine(tmp_path)

    def name_it(conn: Any, _record: Any) -> None:  # a deployment's connect hook
        conn.execute("SET application_name = 'tessera-hooked'")
        conn.commit()
    event.listen(hooked, "connect", name_it)
    mirror = LocalMirror(lambda: PostgresWatch(hooked))
    try:
        assert mirror.answer(_query(jti="j1"), NOW) is None and mirror.live
        with engine.connect() as conn:
            listening = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'tessera-hooked' AND query LIKE 'LISTEN%'")).scalar()
        assert listening == 1
    finally:
        mirror.close()
        hooked.dispose()


def test_a_notification_right_behind_the_health_checks_answer_is_applied(
        engine: Engine, second: Engine) -> None:
    # libpq parses what follows a query's answer only as the answer is collected: a
    # notification read in the same go lands in its queue, and the socket is empty.
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY (PostgreSQL)")
    # A second's health check, as deployed: the steps below have most of it to spare.
    mirror = LocalMirror(lambda: PostgresWatch(engine, health_check=1.0))
    try:
        assert mirror.answer(_query(jti="j1"), NOW) is None and mirror.live
        time.sleep(1.05)
        assert mirror.answer(_query(jti="j1"), NOW) is None  # sends the health check
        time.sleep(0.05)  # its answer waits in the socket, unread
        _service(second).revoke_jti("j1", NOW + HOUR, NOW)
        time.sleep(0.1)  # and the notification behind it
        assert mirror.answer(_query(jti="j1"), NOW) == "token_revoked"
    finally:
        mirror.close()


class _Failing:
    """A watch whose start fails while ``down`` says so."""

    down = True

    def start(self, apply: Any, now: Any, max_rows: int) -> None:
        if _Failing.down:
            raise WatchFailed("OperationalError")

    def fresh(self, apply: Any) -> bool:
        return True

    def close(self) -> None:
        pass


def test_a_mirror_that_cannot_start_says_so_once_a_streak(
        caplog: pytest.LogCaptureFixture) -> None:
    _Failing.down = True
    mirror = LocalMirror(_Failing, retry_seconds=0)
    with caplog.at_level(logging.WARNING, logger="app.core.revocation_local"):
        for _ in range(3):
            assert mirror.answer(_query(jti="j1"), NOW) is UNKNOWN
        _Failing.down = False
        assert mirror.answer(_query(jti="j1"), NOW) is None
        mirror.close()
        _Failing.down = True
        assert mirror.answer(_query(jti="j1"), NOW) is UNKNOWN
    said = [r.getMessage() for r in caplog.records if "could not start" in r.getMessage()]
    assert len(said) == 2 and all("(OperationalError)" in line for line in said)
