"""A login's places in its two counters come back in one transaction (database storage).

``DatabaseStorage.refund`` gives one back to several counters at once, with the
rules of ``incr(key, _, -1)``: never below zero, never into a window that has
lapsed. A successful login takes a place in the per-IP and the per-username
counter and gives both back with one commit; a failed one keeps both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask

from app.core.ratelimit_storage import DatabaseStorage
from tests.support.actions import AuthActions
from tests.support.counters import ManualClock, database_storage
from tests.support.engine_hooks import engine_hooks
from tests.support.tokens import make_user


@pytest.fixture
def storage(app: Flask) -> Iterator[tuple[DatabaseStorage, ManualClock]]:
    with database_storage(app) as pair:
        yield pair


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
    state = {"counter": False}

    def on_statement(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        state["counter"] = state["counter"] or "rate_limit" in statement

    def on_commit(conn) -> None:  # type: ignore[no-untyped-def]
        seen.append("counter" if state["counter"] else "request")
        state["counter"] = False

    with engine_hooks(app, before_cursor_execute=on_statement, commit=on_commit):
        yield seen


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
