"""Deferred audit rows (``audit(defer=True)``): written with the transaction, in order,
in one INSERT; dropped with a rollback.

A login or a refresh defers its success row (LOGIN_SUCCESS, TOKEN_REFRESHED) to
the commit that ``issue_tokens`` makes with TOKEN_ISSUED, so both go in one
statement. Counted on the app's real engine, no mocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import select, text

from app.audit import audit
from app.extensions import db
from app.models import AuditEvent
from tests.support.actions import AuthActions
from tests.support.engine_hooks import engine_hooks
from tests.support.tokens import make_user


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False)
    make_user(app, "alice")
    return app


@contextmanager
def _audit_inserts(app: Flask) -> Iterator[list[int]]:
    """How many rows each INSERT INTO audit_events statement carried."""
    seen: list[int] = []

    def on_statement(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"):
            seen.append(len(parameters) if executemany else 1)

    with engine_hooks(app, before_cursor_execute=on_statement):
        yield seen


def _events(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.event).order_by(AuditEvent.id)))


def test_deferred_rows_are_written_at_the_commit_in_call_order(app) -> None:  # type: ignore[no-untyped-def]
    with app.test_request_context("/"), _audit_inserts(app) as inserts:
        db.session.execute(text("SELECT 1"))  # a transaction is open
        audit("USER_UPDATED", commit=False, defer=True, reason="first")
        audit("USER_UPDATED", commit=False, defer=True, reason="second")
        assert inserts == []  # nothing written yet
        db.session.commit()
        assert inserts == [2]  # both in one statement
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [r.reason for r in rows] == ["first", "second"]


def test_deferred_rows_join_the_next_row_written_at_once(app) -> None:  # type: ignore[no-untyped-def]
    with app.test_request_context("/"), _audit_inserts(app) as inserts:
        db.session.execute(text("SELECT 1"))
        audit("USER_UPDATED", commit=False, defer=True, reason="deferred")
        audit("USER_UPDATED", reason="at-once")  # commits
        assert inserts == [2]
    with app.app_context():
        reasons = db.session.scalars(select(AuditEvent.reason).order_by(AuditEvent.id)).all()
        assert reasons == ["deferred", "at-once"]


def test_a_rollback_drops_the_deferred_rows(app) -> None:  # type: ignore[no-untyped-def]
    with app.test_request_context("/"):
        db.session.execute(text("SELECT 1"))
        audit("USER_UPDATED", commit=False, defer=True, reason="rolled back")
        db.session.rollback()
        audit("USER_UPDATED", reason="kept")
    with app.app_context():
        assert db.session.scalars(select(AuditEvent.reason)).all() == ["kept"]


def test_outside_a_transaction_a_deferred_row_waits_in_the_session(app) -> None:  # type: ignore[no-untyped-def]
    with app.test_request_context("/"):
        assert not db.session().in_transaction()
        audit("USER_UPDATED", commit=False, defer=True, reason="orm")
        db.session.rollback()  # the ORM row goes with it, as before
        db.session.commit()
    assert _events(app) == []


def test_login_and_refresh_write_their_two_rows_in_one_insert(app) -> None:  # type: ignore[no-untyped-def]
    auth = AuthActions(app.test_client())
    with _audit_inserts(app) as inserts:
        assert auth.login().status_code == 200
    assert inserts == [2]
    with _audit_inserts(app) as inserts:
        assert auth.refresh().status_code == 200
    assert inserts == [2]
    assert _events(app) == ["LOGIN_SUCCESS", "TOKEN_ISSUED", "TOKEN_REFRESHED", "TOKEN_ISSUED"]
