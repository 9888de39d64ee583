"""The per-process mirror of the revocations table (app/core/revocation_local, _listen).

Two engines on one database stand for two workers: one revokes, the other's
mirror must see it (SQLite: ``PRAGMA data_version``; PostgreSQL: ``NOTIFY``)
and answer without a statement on its own engine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session

from app.core.revocation import RevocationService, RevocationState
from app.core.revocation_listen import PostgresWatch
from app.core.revocation_local import UNKNOWN, LocalMirror, SqliteWatch, Watch
from app.core.revocation_rules import RevocationQuery
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
