"""A login's places in its two counters come back in one transaction (database storage).

``DatabaseStorage.refund`` gives one back to several counters at once, with the
rules of ``incr(key, _, -1)``: never below zero, never into a window that has
lapsed. A successful login takes a place in the per-IP and the per-username
counter and gives both back with one commit; a failed one keeps both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from flask import Flask
from limits.storage import storage_from_string
from sqlalchemy import event

from app.core.ratelimit_storage import DatabaseStorage
from app.extensions import db
from tests.support.actions import AuthActions
from tests.support.tokens import make_user


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def storage(app: Flask) -> Iterator[tuple[DatabaseStorage, _Clock]]:
    clock = _Clock()
    with app.app_context():
        made = storage_from_string("tessera-db://", engine=db.engine, clock=clock)
        assert isinstance(made, DatabaseStorage)
        yield made, clock


def test_a_refund_of_several_keys_follows_incrs_rules(storage) -> None:  # type: ignore[no-untyped-def]
    counters, clock = storage
    assert counters.incr("a", 60) == 1 and counters.incr("a", 60) == 2
    assert counters.incr("b", 60) == 1
    counters.refund(["a", "b", "never-hit"])
    assert (counters.get("a"), counters.get("b"), counters.get("never-hit")) == (1, 0, 0)
    counters.refund(["b"])
    assert counters.get("b") == 0  # floors at zero: no attempt is credited
    clock.now += 61
    counters.refund(["a"])  # lapsed: nothing to give back, no window opened
    assert counters.incr("a", 60) == 1
    counters.refund([])  # nothing taken: nothing written


@pytest.fixture
def limited_app(make_app):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, RATELIMIT_LOGIN_PER_IP="3/minute",
                   RATELIMIT_LOGIN_PER_USERNAME="3/minute")
    make_user(app, "alice")
    return app


@contextmanager
def _counter_commits(app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []
    with app.app_context():
        engine = db.engine
    state = {"counter": False}

    def on_statement(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        state["counter"] = state["counter"] or "rate_limit" in statement

    def on_commit(conn) -> None:  # type: ignore[no-untyped-def]
        seen.append("counter" if state["counter"] else "request")
        state["counter"] = False

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)


def test_a_login_gives_both_places_back_with_one_commit(limited_app) -> None:  # type: ignore[no-untyped-def]
    if limited_app.extensions["tessera.settings"].redis_url is not None:
        pytest.skip("the database storage only (no REDIS_URL)")
    auth = AuthActions(limited_app.test_client())
    with _counter_commits(limited_app) as seen:
        assert auth.login().status_code == 200
    # Two hits (their own commits), the login's one commit, one refund commit.
    assert seen.count("counter") == 3, seen
    for _ in range(5):  # given back every time: the limit of 3 never bites a success
        assert auth.login().status_code == 200
    for _ in range(3):
        assert auth.login(password="wrong").status_code == 401
    assert auth.login(password="wrong").status_code == 429  # failures keep their places
