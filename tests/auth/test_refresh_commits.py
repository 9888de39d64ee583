"""A refresh costs one commit and a bounded number of statements (issue 21, acceptance 2).

Counted on the app's real engine with SQLAlchemy's event hooks, no mocks: the
rotation, the successor, the session's last use and both audit rows land in
one transaction. The rate limiter's own counter (database storage without
Redis) is not the refresh's and is left out of the count.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Connection, select

from app.extensions import db
from app.models import AuditEvent, RefreshToken
from tests.support.actions import AuthActions
from tests.support.engine_hooks import engine_hooks
from tests.support.tokens import make_user


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False)
    make_user(app, "alice")
    return app


@contextmanager
def _counting(app: Flask) -> Iterator[dict[str, list[str]]]:
    seen: dict[str, list[str]] = {"commits": [], "statements": []}

    def on_commit(conn) -> None:  # type: ignore[no-untyped-def]
        seen["commits"].append("commit")

    def on_statement(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if "rate_limit" not in statement:
            seen["statements"].append(statement.split()[0].upper())

    with engine_hooks(app, commit=on_commit, before_cursor_execute=on_statement):
        yield seen


def _limiter_commits(app: Flask) -> int:
    """Commits the rate limiter makes per request when its storage is the database."""
    with app.app_context():
        return 1 if app.extensions["tessera.settings"].redis_url is None else 0


def test_one_commit_per_refresh(app) -> None:  # type: ignore[no-untyped-def]
    auth = AuthActions(app.test_client())
    assert auth.login().status_code == 200
    assert auth.refresh().status_code == 200  # warm: the revocation mirror loads once
    for _ in range(3):
        with _counting(app) as seen:
            response = auth.refresh()
        assert response.status_code == 200, response.get_json()
        assert len(seen["commits"]) == 1 + _limiter_commits(app)
        # One read (token, session, user), one UPDATE, the successor, the session's last
        # use, the audit rows; the mirror's own read of what the commit changed is no
        # more than one. Nothing is read back after the commit.
        assert seen["statements"].count("SELECT") <= 2, seen["statements"]
        assert len(seen["statements"]) <= 7, seen["statements"]
    with app.app_context():
        events = db.session.scalars(select(AuditEvent.event)).all()
        assert events.count("TOKEN_REFRESHED") == 4 and events.count("TOKEN_ISSUED") == 5
        assert len(db.session.scalars(select(RefreshToken.id)).all()) == 5


def test_a_refresh_that_fails_after_the_update_writes_nothing(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The consumed token, its successor and the audit rows are one transaction."""
    from app.auth import flows
    auth = AuthActions(app.test_client())
    assert auth.login().status_code == 200
    before = auth.refresh_token

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the audit store failed")

    monkeypatch.setattr(flows, "record", broken)
    assert auth.refresh().status_code == 500
    monkeypatch.undo()
    with app.app_context():
        rows = db.session.scalars(select(RefreshToken)).all()
        assert len(rows) == 1 and rows[0].consumed_at is None
    assert auth.refresh_token == before
    assert auth.refresh().status_code == 200  # the token was never consumed


def test_a_refresh_and_its_rate_limit_counter_share_one_sqlite_connection(app) -> None:  # type: ignore[no-untyped-def]
    """SQLite drops a connection's page cache whenever another connection has committed
    since it last read: the counter's write and the refresh must run on the connection the
    pool handed back last, not on the pool's oldest idle one (its default order)."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("a page cache per connection is SQLite's")
        engine = db.engine
    auth = AuthActions(app.test_client())
    assert auth.login().status_code == 200
    first, second = engine.connect(), engine.connect()  # two idle connections in the pool
    first.close()
    second.close()
    used: list[int] = []

    def on_statement(conn, *args) -> None:  # type: ignore[no-untyped-def]
        used.append(id(conn.connection.dbapi_connection))

    with engine_hooks(app, before_cursor_execute=on_statement):
        assert auth.refresh().status_code == 200
    assert _limiter_commits(app) == 1, "the counters are in the database here"
    assert len(used) >= 2 and len(set(used)) == 1, used


def test_a_refresh_runs_its_statements_on_the_dbapi_cursor(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """In the app as configured (no statement listeners on its engine), the lookup, the
    rotation's writes, the audit rows and the rate-limit counter go past
    Connection.execute (app.core.compiled_sql): an engine listener of some other event
    must not turn the fast path off."""
    from app import audit
    from app.core import ratelimit_storage, sessions
    auth = AuthActions(app.test_client())
    assert auth.login().status_code == 200
    through_sqlalchemy: list[int] = []
    execute = Connection.execute

    def spy(self: Connection, statement: Any, *args: Any, **kwargs: Any) -> Any:
        through_sqlalchemy.append(id(statement))
        return execute(self, statement, *args, **kwargs)

    monkeypatch.setattr(Connection, "execute", spy)
    before = auth.refresh_token
    assert auth.refresh().status_code == 200
    assert auth.refresh_token != before
    counters = app.extensions["tessera.limiter"].limiter.storage
    assert isinstance(counters, ratelimit_storage.DatabaseStorage)
    fast = [sessions.FIND, sessions.CONSUME, sessions.ADD_SUCCESSOR, sessions.TOUCH,
            audit._INSERT.statement, counters._upsert.statement]
    assert not {id(statement) for statement in fast} & set(through_sqlalchemy)
