"""A rotation clears the session's older sealed successor through a partial index, not by
visiting every token the session ever had (one per refresh)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from app.core.refresh_statements import CONSUME
from app.extensions import db
from app.models import RefreshToken
from tests.support.actions import AuthActions
from tests.support.tokens import make_user


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False)
    make_user(app, "alice")
    return app


def test_only_the_last_consumed_token_keeps_its_sealed_successor(app: Flask) -> None:
    auth = AuthActions(app.test_client())
    assert auth.login().status_code == 200
    for _ in range(6):
        assert auth.refresh().status_code == 200
    with app.app_context():
        tokens = db.session.scalars(select(RefreshToken).order_by(RefreshToken.id)).all()
        assert len(tokens) == 7
        assert [t.consumed_at is not None for t in tokens] == [True] * 6 + [False]
        sealed = [t.id for t in tokens if t.successor_sealed is not None]
        assert sealed == [tokens[-2].id]  # the grace path's one token; older ones cleared


def test_the_rotation_reaches_its_rows_by_index(app: Flask) -> None:
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("the plan is read with SQLite's EXPLAIN QUERY PLAN")
        compiled = CONSUME.compile(dialect=db.engine.dialect)
        params = {"sid": "s", "rid": 1, "now": None, "sealed": b"x"}
        with db.engine.connect() as connection:
            plan = [row[-1] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + str(compiled),
                tuple(params[name] for name in compiled.positiontup or ()))]
    assert any("ix_refresh_tokens_sealed" in step for step in plan), plan
    assert any("PRIMARY KEY" in step for step in plan), plan
    assert not any("ix_refresh_tokens_session_id" in step for step in plan), plan
