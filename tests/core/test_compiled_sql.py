"""app.core.compiled_sql held against SQLAlchemy's own execution, statement by statement.

Every statement the refresh, the audit trail and the rate-limit counters run on the
DBAPI cursor runs here both ways from one database state (each in a transaction
rolled back after): the rows returned (values and Python types: aware datetimes,
JSON lists, bytes) and the tables afterwards must be equal. On SQLite and, with
TEST_DATABASE_URL, on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Integer, event, exc, select
from sqlalchemy.orm import Session

from app import audit
from app.core import ratelimit_storage, sessions
from app.core.compiled_sql import CompiledStatement
from app.core.crypto import sha256_hex
from app.core.sessions import new_session, write_session
from app.models import AuditEvent, AuthSession, RateLimitCounter, RefreshToken
from tests.support.databases import LIMITS, NOW, add_user

_TABLES = (AuthSession, RefreshToken, AuditEvent, RateLimitCounter)


@pytest.fixture
def state(engine: Engine, db: Session) -> dict[str, Any]:
    """A user with one session: a consumed token holding a sealed successor, and the
    current one; an audit row; a live and a lapsed rate-limit counter."""
    user = add_user(db)
    sess, first = new_session(user, now=NOW, limits=LIMITS, amr=["pwd", "otp"])
    write_session(db, sess, first)
    db.flush()
    current = "current-token"
    db.add(RefreshToken(session_id=sess.id, token_hash=sha256_hex(current), created_at=NOW))
    db.execute(RefreshToken.__table__.update()
               .where(RefreshToken.token_hash == sha256_hex(first))
               .values(consumed_at=NOW, successor_sealed=b"\x00sealed\xff"))
    db.add(AuditEvent(at=NOW, event="LOGIN_SUCCESS", user_id=user.id, details={"a": [1]}))
    db.add(RateLimitCounter(key="live", count=3, expires_at=NOW + timedelta(minutes=1)))
    db.add(RateLimitCounter(key="lapsed", count=9, expires_at=NOW - timedelta(minutes=1)))
    db.commit()
    token_id = db.scalars(select(RefreshToken.id)
                          .where(RefreshToken.token_hash == sha256_hex(current))).one()
    return {"sid": sess.id, "first": first, "current": current, "rid": token_id,
            "user_id": user.id}


def _tables(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row, without generated ids (PostgreSQL's sequences do not roll back)."""
    dumped = {}
    for model in _TABLES:
        columns = [c for c in model.__table__.columns
                   if not (c.primary_key and isinstance(c.type, Integer))]
        rows = conn.execute(select(*columns))
        dumped[model.__tablename__] = sorted((tuple(row) for row in rows), key=repr)
    return dumped


def _both_ways(engine: Engine, compiled: CompiledStatement,
               run: Callable[[CompiledStatement, Connection], Any],
               reference: Callable[[Connection], Any]) -> tuple[Any, Any]:
    """(compiled result and tables, SQLAlchemy's result and tables), each rolled back."""
    outcomes = []
    for way in ("compiled", "sqlalchemy"):
        with engine.connect() as conn:
            conn.begin()
            returned = run(compiled, conn) if way == "compiled" else reference(conn)
            outcomes.append((returned, _tables(conn)))
            conn.rollback()
    return outcomes[0], outcomes[1]


def _rows(conn: Connection, statement: Any, values: Any) -> list[tuple[Any, ...]]:
    result = conn.execute(statement, values)
    return [tuple(row) for row in result] if result.returns_rows else []


def _same(engine: Engine, compiled: CompiledStatement, statement: Any,
          values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run one statement both ways; assert the same rows and tables; the rows."""
    mine, theirs = _both_ways(engine, compiled, lambda c, conn: c.run(conn, values),
                              lambda conn: _rows(conn, statement, dict(values)))
    assert mine == theirs
    assert [type(v) for row in mine[0] for v in row] == [
        type(v) for row in theirs[0] for v in row]
    return mine[0]  # type: ignore[no-any-return]


def test_the_refresh_lookup(engine: Engine, state: dict[str, Any]) -> None:
    for presented in (state["current"], state["first"], "unknown"):
        rows = _same(engine, sessions._FIND, sessions.FIND,
                     {"token_hash": sha256_hex(presented)})
        assert len(rows) == (0 if presented == "unknown" else 1)
    row = sessions._FIND.first(engine.connect(), {"token_hash": sha256_hex(state["first"])})
    assert row is not None
    token, sess, user = sessions.found_rows(row)
    assert token.consumed_at == NOW and token.consumed_at.tzinfo is not None
    assert token.successor_sealed == b"\x00sealed\xff"
    assert sess is not None and sess.amr == ["pwd", "otp"] and sess.expires_at > NOW
    assert user is not None and user.roles == ["user"] and user.disabled is False


def test_the_refresh_writes(engine: Engine, state: dict[str, Any]) -> None:
    later = NOW + timedelta(seconds=5)
    consume = {"sid": state["sid"], "rid": state["rid"], "now": later, "sealed": b"next"}
    # The current token consumed, the older one's sealed successor cleared: two rows.
    updated = _same(engine, sessions._CONSUME, sessions.CONSUME, consume)
    assert (state["rid"],) in updated and len(updated) == 2
    add = {"sid": state["sid"], "now": later, "token_hash": sha256_hex("next"),
           "unused": "ignored"}
    _same(engine, sessions._ADD_SUCCESSOR, sessions.ADD_SUCCESSOR, add)
    _same(engine, sessions._TOUCH, sessions.TOUCH, add)


def test_audit_rows_in_one_executemany(engine: Engine, state: dict[str, Any]) -> None:
    rows = [{"at": NOW + timedelta(seconds=n), "event": "TOKEN_ISSUED",
             "user_id": state["user_id"], "actor_id": None, "session_id": state["sid"],
             "request_id": "r", "ip": "203.0.113.7", "user_agent": "ua", "result": "success",
             "reason": None, "kid": None, "details": {"jti": f"j{n}", "n": [n, None]}}
            for n in range(2)]
    table = audit.AuditEvent.__table__
    mine, theirs = _both_ways(
        engine, audit._INSERT, lambda c, conn: c.run_many(conn, rows),
        lambda conn: conn.execute(table.insert(), rows))
    assert mine[1] == theirs[1] and len(mine[1]["audit_events"]) == 3


def test_rate_limit_counters(engine: Engine, state: dict[str, Any]) -> None:
    upsert = ratelimit_storage._upsert(engine.dialect.name)
    statement = upsert.statement  # the Core statement it was compiled from
    until = NOW + timedelta(minutes=1)
    for key in ("live", "lapsed", "new"):
        values = {"k": key, "n": 2, "now": NOW, "until": until}
        counted = _same(engine, upsert, statement, values)
        assert counted == [({"live": 5, "lapsed": 2, "new": 2}[key],)]
    for compiled in (ratelimit_storage._refund, ratelimit_storage._get,
                     ratelimit_storage._get_expiry):
        for key in ("live", "lapsed"):
            _same(engine, compiled, compiled.statement, {"k": key, "n": -5, "now": NOW})
    _same(engine, ratelimit_storage._purge, ratelimit_storage._purge.statement,
          {"now": NOW})
    _same(engine, ratelimit_storage._clear, ratelimit_storage._clear.statement,
          {"k": "live"})


def test_a_missing_parameter_is_refused_before_the_database(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(KeyError, match="token_hash"):
        sessions._FIND.run(conn, {"hash": "x"})


def test_listeners_see_every_statement(engine: Engine, state: dict[str, Any]) -> None:
    """With a cursor-execute listener on the engine (tracing, a test counting statements)
    a compiled statement goes through Connection.execute, which tells it."""
    seen: list[str] = []

    def listener(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    values = {"token_hash": sha256_hex(state["current"])}
    with engine.connect() as conn:
        quiet = sessions._FIND.first(conn, values)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        with engine.connect() as conn:
            watched = sessions._FIND.first(conn, values)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert quiet == watched and quiet is not None
    assert [s for s in seen if "refresh_tokens" in s] == [
        sessions._FIND._for(engine.dialect).sql]
    seen.clear()
    with engine.connect() as conn:  # a listener on one connection only
        event.listen(conn, "before_cursor_execute", listener)
        assert sessions._FIND.first(conn, values) == quiet
    assert len([s for s in seen if "refresh_tokens" in s]) == 1


def test_without_listeners_the_dbapi_cursor_runs_it(
        engine: Engine, state: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is taken: Connection.execute never sees the statement."""
    calls: list[Any] = []
    execute = Connection.execute

    def spy(self: Connection, statement: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(statement)
        return execute(self, statement, *args, **kwargs)

    monkeypatch.setattr(Connection, "execute", spy)
    with engine.connect() as conn:
        row = sessions._FIND.first(conn, {"token_hash": sha256_hex(state["current"])})
    assert row is not None and sessions.found_rows(row)[0].id == state["rid"]
    assert calls == []


def test_errors_come_out_as_from_sqlalchemy(engine: Engine, state: dict[str, Any]) -> None:
    """A duplicate successor is SQLAlchemy's IntegrityError either way (callers catch
    SQLAlchemy's classes), and the transaction is left to the caller to roll back."""
    taken = {"sid": state["sid"], "now": NOW, "token_hash": sha256_hex(state["current"])}
    raised = []
    for run in (lambda conn: sessions._ADD_SUCCESSOR.run(conn, taken),
                lambda conn: conn.execute(sessions.ADD_SUCCESSOR, taken)):
        with engine.connect() as conn, pytest.raises(exc.IntegrityError) as caught:
            run(conn)
        raised.append(type(caught.value))
    assert raised[0] is raised[1]
