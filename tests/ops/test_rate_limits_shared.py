"""Login limits hold in every configuration (issue 16, findings 5 and 11).

Against gunicorn with two workers: concurrent guesses cannot get past the
failed-login limit (attempts are counted before the password check), the
workers share one set of counters without Redis (the database storage, on
SQLite and on PostgreSQL) and with it, and a Redis that dies mid-way does not
turn the limits off (each worker then counts in its own memory). In process:
the database storage's windows and refunds, and in-view limits (MFA codes,
password changes) counted by several threads at once.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from flask import Flask
from limits import parse
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import func, select

from app import ratelimit
from app.core.ratelimit_storage import PURGE_EVERY, DatabaseStorage
from app.extensions import db
from app.models import RateLimitCounter
from tests.conftest import TEST_KEK
from tests.support.counters import ManualClock, database_storage
from tests.support.http import Reply, call
from tests.support.servers import AppServer, RedisServer
from tests.support.tokens import PASSWORD, make_user

GUESSES = 30
LIMIT = 10  # the default RATELIMIT_LOGIN_PER_IP and _PER_USERNAME: 10/minute


def _server(database_url: str, tmp_path, **env: str) -> AppServer:  # type: ignore[no-untyped-def]
    return AppServer({
        "TESSERA_DATABASE_URL": database_url, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_ISSUER": "http://localhost", "TESSERA_COOKIE_SECURE": "false",
        "TESSERA_INSTANCE_PATH": str(tmp_path / "srv"), **env,
    }, workers=2, threads=4).start()


def _wrong(server: AppServer) -> Reply:
    return call("POST", server.url + "/auth/login", timeout=60,
                json_body={"username": "alice", "password": "not the password at all"})


def _all_at_once(server: AppServer, count: int) -> Counter[int]:
    """``count`` wrong passwords for one user from one address, released together."""
    statuses: list[int] = []
    barrier = threading.Barrier(count)

    def guess() -> None:
        barrier.wait(timeout=30)
        statuses.append(_wrong(server).status)

    threads = [threading.Thread(target=guess) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == count  # every request answered within the bound
    return Counter(statuses)


@pytest.fixture
def alice(app: Flask) -> None:
    make_user(app, "alice")


@pytest.mark.slow
@pytest.mark.parametrize("store", ["database", "redis"])
def test_concurrent_guesses_never_pass_the_limit(  # type: ignore[no-untyped-def]
        request, alice, database_url, tmp_path, store) -> None:
    env = {"TESSERA_REDIS_URL": request.getfixturevalue("redis_url")} if store == "redis" else {}
    server = _server(database_url, tmp_path, **env)
    try:
        statuses = _all_at_once(server, GUESSES)
        right = call("POST", server.url + "/auth/login",
                     json_body={"username": "alice", "password": PASSWORD})
    finally:
        server.stop()
    # Exactly the limit's number of guesses reached the password check, shared by both
    # workers; the rest were refused before it.
    assert statuses == {401: LIMIT, 429: GUESSES - LIMIT}, statuses
    assert right.status == 429  # the user's counter is spent for this window


@pytest.mark.slow
def test_limits_hold_after_redis_dies(  # type: ignore[no-untyped-def]
        alice, database_url, redis_server: RedisServer, redis_url, tmp_path) -> None:
    server = _server(database_url, tmp_path, TESSERA_REDIS_URL=redis_url)
    try:
        assert _wrong(server).status == 401  # counted in Redis
        redis_server.kill()
        statuses = [_wrong(server).status for _ in range(40)]
    finally:
        server.stop()
        redis_server.start()
    # Each of the two workers now counts alone in its memory: at most the limit each.
    assert set(statuses) == {401, 429}, statuses
    assert statuses.count(401) <= 2 * LIMIT
    assert statuses[-1] == 429


# The storage itself, in process, on the test database (SQLite or PostgreSQL).

@pytest.fixture
def storage(app: Flask) -> Iterator[tuple[DatabaseStorage, ManualClock]]:
    with database_storage(app) as pair:
        yield pair


def test_a_window_counts_then_lapses(storage) -> None:  # type: ignore[no-untyped-def]
    counters, clock = storage
    limiter = FixedWindowRateLimiter(counters)
    item = parse("3/minute")
    assert [limiter.hit(item, "k") for _ in range(4)] == [True, True, True, False]
    assert counters.get(item.key_for("k")) == 4
    assert counters.get_expiry(item.key_for("k")) == clock.now + 60
    clock.now += 60  # the window ends: a new one starts at the next hit
    assert counters.get(item.key_for("k")) == 0
    assert limiter.hit(item, "k")
    assert counters.get_expiry(item.key_for("k")) == clock.now + 60


def test_a_refund_floors_at_zero_and_never_opens_a_window(storage) -> None:  # type: ignore[no-untyped-def]
    counters, clock = storage
    assert counters.incr("k", 60) == 1
    assert counters.incr("k", 60, amount=-1) == 0
    assert counters.incr("k", 60, amount=-1) == 0  # not -1: no attempt is credited
    clock.now += 61
    assert counters.incr("k", 60, amount=-1) == 0  # lapsed: nothing to give back
    assert counters.incr("k", 60) == 1


def test_long_keys_lapsed_rows_and_clear(storage, app: Flask) -> None:  # type: ignore[no-untyped-def]
    counters, clock = storage
    long_key = "x" * 400
    assert counters.incr(long_key, 60) == 1 and counters.get(long_key) == 1
    counters.clear(long_key)
    assert counters.get(long_key) == 0
    for n in range(PURGE_EVERY):  # the purge runs once in PURGE_EVERY increments
        counters.incr(f"old-{n}", 1)
        if n == 0:
            clock.now += 2  # the first rows' windows lapse while the rest are written
    with app.app_context():
        rows = db.session.scalar(select(func.count()).select_from(RateLimitCounter))
    assert rows is not None and rows < PURGE_EVERY
    assert counters.check() and counters.reset() == rows


def test_wrong_after_right_passwords_count_exactly(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, RATELIMIT_LOGIN_PER_IP="3/minute")
    make_user(app, "alice")
    client = app.test_client()

    def login(password: str) -> int:
        return client.post("/auth/login", json={"username": "alice",
                                                "password": password}).status_code

    assert [login("wrong password!"), login(PASSWORD), login(PASSWORD)] == [401, 200, 200]
    assert [login("wrong password!"), login("wrong password!")] == [401, 401]
    assert login(PASSWORD) == 429  # three failures: successes gave their places back
    with app.app_context():
        counted = db.session.scalars(select(RateLimitCounter.count)).all()
    assert sorted(counted) == [3, 3]  # per address and per username, in the database


def test_in_view_limits_count_against_their_own_keys(make_app) -> None:  # type: ignore[no-untyped-def]
    """The MFA and password-change limits, counted by threads of one worker at once."""
    app = make_app()
    rate, attempts, threads_n = "1000000/minute", 300, 4
    errors: list[BaseException] = []

    def attempt_many(n: int) -> None:
        try:
            for _ in range(attempts):
                with app.test_request_context("/auth/password", method="POST"), \
                        ratelimit.limit(rate, f"user:{n}", f"scope-{n}"):
                    pass
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows: the race shows
    try:
        threads = [threading.Thread(target=attempt_many, args=(n,)) for n in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    counters = app.extensions["tessera.limiter"].limiter.storage
    with app.app_context():
        counts = {n: counters.get(parse(rate).key_for("tessera-rl", f"user:{n}", f"scope-{n}"))
                  for n in range(threads_n)}
    assert counts == dict.fromkeys(range(threads_n), attempts)


# Every limit is declared on a route and checked by that view's wrapper.

def _runs_limiter_hook(hook: object, limiter: object) -> bool:
    """Whether ``hook`` is one of ``limiter``'s hooks or a wrapper around one."""
    closure = getattr(hook, "__closure__", None) or ()
    return any(ratelimit._owned_by(inner, limiter)
               for inner in (hook, *(cell.cell_contents for cell in closure)))


def test_no_limiter_hook_runs_before_a_request(app: Flask) -> None:
    """flask-limiter's before-request hook checks only app-wide limits, which are refused
    below: it would cost a limited request 30-60 µs for nothing."""
    limiter = app.extensions["tessera.limiter"]
    before = [hook for hooks in app.before_request_funcs.values() for hook in hooks]
    after = [hook for hooks in app.after_request_funcs.values() for hook in hooks]
    assert before and not any(_runs_limiter_hook(hook, limiter) for hook in before)
    assert any(_runs_limiter_hook(hook, limiter) for hook in after)  # the check finds hooks


@pytest.mark.parametrize("setting", ["RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION",
                                     "RATELIMIT_META"])
def test_app_wide_limits_are_refused_not_ignored(make_app, setting: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match=setting):
        make_app(**{setting: "1/minute"})
