"""A login's places in its two counters come back together: in one transaction
(database storage) or one round trip (Redis).

``DatabaseStorage.refund`` gives one back to several counters at once, with the
rules of ``incr(key, _, -1)``: never below zero, never into a window that has
lapsed. A successful login takes a place in the per-IP and the per-username
counter and gives both back with one commit; a failed one keeps both. With
Redis the two refunds are one pipeline of limits' own script, and a Redis that
lost the script meanwhile still gets them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from flask import Flask
from limits import parse
from limits.storage import RedisStorage
from redis.connection import AbstractConnection

from app import ratelimit
from app.core.ratelimit_storage import DatabaseStorage
from tests.support.actions import AuthActions
from tests.support.counters import ManualClock, database_storage
from tests.support.engine_hooks import engine_hooks
from tests.support.servers import RedisServer
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


@pytest.fixture
def redis_limited_app(make_app, redis_url):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, REDIS_URL=redis_url,
                   RATELIMIT_LOGIN_PER_IP="3/minute", RATELIMIT_LOGIN_PER_USERNAME="3/minute")
    make_user(app, "alice")
    return app


def _login_counters(redis_server: RedisServer) -> list[int]:
    with redis_server.client() as client:
        return sorted(int(client.get(key) or 0) for key in client.keys("LIMITS:*login*"))


@contextmanager
def _script_sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """What each write to Redis carried that runs or asks about a script: a pipeline
    is one write, however many commands it holds."""
    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    def send(self, command, check_health=True):  # type: ignore[no-untyped-def]
        packed = b"".join(command) if isinstance(command, list) else command
        if b"EVALSHA" in packed or b"SCRIPT" in packed:
            sent.append(packed)
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send)
    yield sent


def test_redis_gives_both_places_back_in_one_round_trip(  # type: ignore[no-untyped-def]
        redis_limited_app, redis_server, monkeypatch) -> None:
    auth = AuthActions(redis_limited_app.test_client())
    assert auth.login().status_code == 200  # the first loads limits' scripts
    with _script_sends(monkeypatch) as sent:
        assert auth.login().status_code == 200
    # The two hits, then one write holding both refunds (no SCRIPT EXISTS before it).
    assert [packed.count(b"EVALSHA") for packed in sent] == [1, 1, 2], sent
    assert _login_counters(redis_server) == [0, 0]
    for _ in range(4):  # given back every time: the limit of 3 never bites a success
        assert auth.login().status_code == 200
    for _ in range(3):
        assert auth.login(password="wrong").status_code == 401
    assert _login_counters(redis_server) == [3, 3]  # failures keep their places
    assert auth.login(password="wrong").status_code == 429


def test_redis_refunds_survive_a_lost_script(redis_url, redis_server) -> None:  # type: ignore[no-untyped-def]
    """A Redis restarted between the hits and the refunds has no script: ``incr`` loads
    it again and the places still come back."""
    counters = RedisStorage(redis_url)
    minute = parse("3/minute")
    taken = [SimpleNamespace(key=key, limit=minute) for key in ("login/a", "login/b")]
    for one in taken:
        counters.incr(one.key, 60)
        counters.incr(one.key, 60)
    with redis_server.client() as client:
        client.script_flush()
    ratelimit._refund_pipelined(counters, taken)  # type: ignore[arg-type]
    assert [counters.get(one.key) for one in taken] == [1, 1]
    ratelimit._refund_pipelined(counters, taken)  # type: ignore[arg-type]
    assert [counters.get(one.key) for one in taken] == [0, 0]
