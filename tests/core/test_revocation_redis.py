"""RevocationService with a real redis-server and no app (app/core/revocation_redis, _trust).

Writes go to the database, then Redis; the check believes Redis only while the
trust row names its epoch and server; Redis killed or flushed: the database
answers, and a revoked token never comes back (SPEC §6).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from app.core.revocation import RevocationService, RevocationState
from app.core.revocation_rules import EPOCH_KEY, StoreUnavailable, micros, redis_key
from app.core.revocation_trust import TrustKeeper, TrustStore
from tests.support.databases import NOW
from tests.support.servers import RedisServer

HOUR = timedelta(hours=1)
SECOND = int(NOW.timestamp())


class Rig:
    """A service over the test's database and Redis, with a hand-moved monotonic clock."""

    def __init__(self, engine: Engine, db: Session, url: str, fail_mode: str = "open") -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2)
        # A fixed monotonic clock: the trust row is re-read only when a check needs it.
        self.trust = TrustKeeper(TrustStore(lambda: engine), 60.0, monotonic=lambda: 0.0)
        self.client.connection_pool.connection_kwargs["redis_connect_func"] = self.trust.on_connect
        self.fallbacks: list[str] = []
        self.state = RevocationState(trust=self.trust, local_mirror=False,
                                     on_fallback=self.fallbacks.append)
        self.service = RevocationService(db, self.client, state=self.state, fail_mode=fail_mode)

    def check(self, **facts: Any) -> str | None:
        values: dict[str, Any] = {"jti": None, "sid": None, "user_id": None, "iat": None,
                                  "token_hash": None, **facts}
        return self.service.check(now=NOW, **values)


@pytest.fixture
def live_redis(redis_server: RedisServer) -> str:
    """The session's redis-server, running and empty (its clients closed, not left to GC)."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def rig(engine: Engine, db: Session, live_redis: str) -> Iterator[Rig]:
    made = Rig(engine, db, live_redis)
    yield made
    made.client.close()


@pytest.fixture
def restart(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session's redis-server, running again after a test that kills it."""
    yield redis_server
    if redis_server.process is None:
        redis_server.start()


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_: seen.append(sql))
    return seen


def test_the_first_check_rebuilds_and_trusts_redis(rig: Rig) -> None:
    assert rig.trust.store.read().trusted is False  # no row yet: untrusted
    assert rig.check(jti="j1") is None
    row = rig.trust.store.read()
    assert row.trusted and row.epoch == rig.client.get(EPOCH_KEY)
    assert row.identity == rig.trust.identity and row.identity is not None


def test_a_write_then_a_check_answered_by_redis(rig: Rig, engine: Engine) -> None:
    rig.check(jti="warm-up")
    rig.service.revoke_jti("j1", NOW + HOUR, NOW, "logout")
    assert rig.client.get(redis_key("jti", "j1")) == b"1"
    assert 3_590_000 < rig.client.pttl(redis_key("jti", "j1")) <= 3_600_000
    seen = _statements(engine)
    assert rig.check(jti="j1") == "token_revoked"
    assert rig.check(jti="j2", sid="s2", user_id=7, iat=SECOND) is None
    assert seen == []  # one MGET, no database statement
    assert rig.fallbacks == []


def test_redis_keeps_the_latest_cutoff_and_the_longest_life(rig: Rig) -> None:
    rig.check(jti="warm-up")
    later = NOW + timedelta(minutes=5)
    rig.service.revoke_user(7, later, NOW + 2 * HOUR)
    rig.service.revoke_user(7, NOW, NOW + HOUR)  # earlier, shorter: Redis keeps the first
    key = redis_key("user", "7")
    assert int(rig.client.get(key) or 0) == micros(later)
    assert rig.client.pttl(key) > 6_890_000  # the first life (115 min from its now), not 1 h
    assert rig.check(user_id=7, iat=SECOND + 60, sid="s") == "user_revoked"


def test_redis_killed_the_database_answers(rig: Rig, restart: RedisServer) -> None:
    rig.check(jti="warm-up")
    rig.service.revoke_jti("j1", NOW + HOUR, NOW)
    restart.kill()
    assert rig.check(jti="j1") == "token_revoked"  # from the database
    assert rig.check(jti="j2") is None
    assert rig.state.redis_down and rig.fallbacks[:1] == ["ConnectionError"]
    rig.service.revoke_jti("j3", NOW + HOUR, NOW)  # the database takes it; Redis is distrusted
    assert not rig.trust.store.read().trusted
    assert rig.check(jti="j3") == "token_revoked"


def test_revoked_while_down_stays_revoked_after_a_restart(rig: Rig,
                                                          restart: RedisServer) -> None:
    rig.check(jti="warm-up")
    restart.kill()
    rig.service.revoke_jti("j1", NOW + HOUR, NOW)
    restart.start()  # empty: a restart without persistence lost everything
    assert rig.check(jti="j1") == "token_revoked"  # repaired on the way
    assert rig.client.get(redis_key("jti", "j1")) == b"1"  # rebuilt from the database
    assert rig.trust.store.read().trusted and not rig.state.redis_down


def test_a_flushed_redis_is_rebuilt(rig: Rig) -> None:
    rig.check(jti="warm-up")
    rig.service.revoke_session("s1", NOW + HOUR, NOW)
    rig.client.flushall()  # the epoch marker goes with the keys
    assert rig.check(sid="s1") == "session_revoked"
    assert rig.client.get(redis_key("sid", "s1")) == b"1"


def test_fail_closed_refuses_to_answer(engine: Engine, db: Session, live_redis: str,
                                       restart: RedisServer) -> None:
    rig = Rig(engine, db, live_redis, fail_mode="closed")
    try:
        assert rig.check(jti="j1") is None
        restart.kill()
        with pytest.raises(StoreUnavailable):
            rig.check(jti="j1")
    finally:
        rig.client.close()


def test_a_long_wait_is_asked_for_in_slices_the_socket_timeout_outlasts() -> None:
    from app.core.revocation_redis import _WAIT_SLICE_MS, _wait_slices

    assert _wait_slices(1000) == [300, 300, 300, 100] and sum(_wait_slices(1000)) == 1000
    assert _wait_slices(300) == [300]
    assert _wait_slices(0) == [1]  # WAIT 0 would block for ever
    assert max(_wait_slices(10_000)) == _WAIT_SLICE_MS < 500  # the client's socket timeout
