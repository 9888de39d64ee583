"""What the revocation store does with replicas, a Redis that may evict, and an untrusted
Redis in closed mode (issue 15).

REVOCATION_REDIS_WAIT_REPLICAS makes every revocation wait (Redis ``WAIT``) for
that many replicas; one not acknowledged counts as a failed write. A Redis whose
maxmemory-policy may drop keys on its own is never trusted. With
REVOCATION_FAIL_MODE=closed an untrusted Redis that cannot be repaired answers
503, as a Redis that is down does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask import Flask

from app.core.revocation import EPOCH_KEY, redis_key
from app.core.revocation_trust import TrustRow, TrustStore
from app.extensions import db
from tests.support.actions import AuthActions
from tests.support.servers import RedisServer, wait_until
from tests.support.tokens import make_user


def _trust(app: Flask) -> TrustRow:
    with app.app_context():
        return TrustStore(lambda: db.engine).read()


def _login(app: Flask) -> tuple[AuthActions, str]:
    auth = AuthActions(app.test_client())
    response = auth.login()
    assert response.status_code == 200
    return auth, response.get_json()["access_token"]


def _sid(token: str) -> str:
    import jwt

    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


@pytest.fixture
def replica(redis_url: str, redis_server: RedisServer) -> Iterator[RedisServer]:
    primary = redis_server.client()
    primary.config_set("repl-diskless-sync-delay", 0)  # sync the replica at once, not in 5 s
    server = RedisServer(replica_of=redis_server.port)
    server.start()
    wait_until(lambda: server.client().info("replication")["master_link_status"] == "up"
               and primary.info("replication").get("slave0", {}).get("state") == "online")
    yield server
    server.stop()


def test_revocations_wait_for_a_replica_and_an_unacknowledged_one_is_a_failed_write(
    make_app, redis_server: RedisServer, redis_url: str, replica: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False,
                   REVOCATION_REDIS_WAIT_REPLICAS=1, REVOCATION_REDIS_WAIT_TIMEOUT=1)
    make_user(app, "alice")
    auth, token = _login(app)
    assert auth.me(token).status_code == 200  # the first check rebuilds Redis
    assert auth.logout().status_code == 200
    # WAIT returned once the replica had it: the replica holds the revocation already.
    assert replica.client().exists(redis_key("sid", _sid(token)))
    assert _trust(app).trusted
    assert auth.me(token).status_code == 401

    replica.kill()
    primary = redis_server.client()
    wait_until(lambda: primary.info("replication")["connected_slaves"] == 0)
    late_auth, late = _login(app)
    assert late_auth.me(late).status_code == 200
    with caplog.at_level(logging.WARNING, logger="app.core"):
        assert late_auth.logout().status_code == 200  # in the database; WAIT saw no replica
    # WAIT answered "no replica" within its timeout: the socket outlasted it (no TimeoutError).
    assert "write_failed:_NotAcknowledged" in caplog.text
    assert primary.exists(redis_key("sid", _sid(late)))  # the primary has it...
    assert not _trust(app).trusted  # ...but a failover could lose it: untrusted
    assert primary.get(EPOCH_KEY) is None
    assert late_auth.me(late).status_code == 401


def test_a_redis_that_may_evict_keys_is_never_trusted(
    make_app, redis_server: RedisServer, redis_url: str
) -> None:  # type: ignore[no-untyped-def]
    client = redis_server.client()
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        app = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False)
        make_user(app, "alice")
        revoked_auth, revoked = _login(app)
        valid_auth, valid = _login(app)
        assert revoked_auth.logout().status_code == 200
        for _ in range(3):
            assert revoked_auth.me(revoked).status_code == 401  # from the database
            assert valid_auth.me(valid).status_code == 200
        assert not _trust(app).trusted
        assert client.get(EPOCH_KEY) is None  # never rebuilt into a cache that may drop keys
    finally:
        client.config_set("maxmemory-policy", "noeviction")


def test_closed_mode_refuses_while_redis_is_untrusted_and_resumes_once_rebuilt(
    make_app, redis_server: RedisServer, redis_url: str
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False, REVOCATION_FAIL_MODE="closed")
    make_user(app, "alice")
    ended_auth, ended = _login(app)  # the first login repairs Redis itself: no 503 first
    valid_auth, valid = _login(app)
    assert valid_auth.me(valid).status_code == 200
    redis_server.set_maxmemory(1)
    try:
        assert ended_auth.logout().status_code == 200  # in the database; Redis refused it
        assert not _trust(app).trusted
        response = valid_auth.me(valid)
        assert response.status_code == 503
        assert response.get_json()["error"] == "unavailable"
    finally:
        redis_server.set_maxmemory(0)
    wait_until(lambda: valid_auth.me(valid).status_code == 200)  # rebuilt by a check
    assert _trust(app).trusted
    assert ended_auth.me(ended).status_code == 401
