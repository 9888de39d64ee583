"""Revocation over TLS and a unix socket, and the mirror's connections (issue 15, acceptance 4).

The mirror's two connections must be made exactly like the client's: through
TLS with the CA and client certificate, or on the unix socket, never plain
TCP to a copied host and port. Its subscriber is health-checked, and a
killed or silently dead one empties the mirror until tracking is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app.core.revocation import PREFIX
from app.core.revocation_mirror import RevocationMirror
from tests.conftest import TEST_KEK
from tests.support.actions import AuthActions
from tests.support.http import call, login_token
from tests.support.redis_servers import PASSWORD as REDIS_PASSWORD
from tests.support.redis_servers import PlainRedis, Relay, TlsRedis, UnixRedis
from tests.support.servers import AppServer, wait_until
from tests.support.tokens import PASSWORD, bearer, make_user


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[TlsRedis]:
    server = TlsRedis().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def unix_redis() -> Iterator[UnixRedis]:
    server = UnixRedis().start()
    yield server
    server.stop()


@pytest.fixture(params=["tls", "unix"])
def transport(request: pytest.FixtureRequest) -> tuple[str, redis.Redis]:
    """(REDIS_URL, an admin client) of an empty Redis reached by TLS or by a unix socket."""
    server = request.getfixturevalue(f"{request.param}_redis")
    url = server.url() if request.param == "tls" else server.url
    admin = server.client()
    admin.flushall()
    return url, admin


def _reads(admin: redis.Redis) -> int:
    """How many MGET and GET commands the server has run (INFO commandstats)."""
    stats: dict[str, Any] = admin.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("mget", "get"))


def _login(app: Any) -> tuple[AuthActions, str]:
    auth = AuthActions(app.test_client())
    response = auth.login()
    assert response.status_code == 200
    return auth, response.get_json()["access_token"]


def _mirror(app: Any) -> Any:
    return app.extensions["tessera.revocation"].state.mirror


def _warm(auth: AuthActions, token: str, admin: redis.Redis | None = None) -> None:
    """Checks until the mirror answers this token's keys (the first may rebuild Redis);
    with ``admin``, until five checks in a row make no read (late invalidations applied)."""
    for _ in range(3):
        assert auth.me(token).status_code == 200
    if admin is None:
        return

    def steady() -> bool:
        time.sleep(0.2)  # lets invalidations still in flight (a relay's thread) arrive
        before = _reads(admin)
        for _ in range(5):
            assert auth.me(token).status_code == 200
        return _reads(admin) == before

    wait_until(steady, timeout=10)


def test_the_mirror_answers_through_tls_and_a_unix_socket(make_app, transport) -> None:  # type: ignore[no-untyped-def]
    url, admin = transport
    app = make_app(REDIS_URL=url, COOKIE_SECURE=False)
    make_user(app, "alice")
    auth, token = _login(app)
    _warm(auth, token)
    assert _mirror(app).live
    before = _reads(admin)
    for _ in range(20):
        assert auth.me(token).status_code == 200
    assert _reads(admin) == before  # warm caches: no round trip at all
    assert AuthActions(app.test_client()).client.post(
        "/auth/logout-all", headers=bearer(token)).status_code == 200
    assert auth.me(token).status_code == 401  # the invalidation came through the same way


def test_no_password_crosses_a_plain_connection(make_app, tls_redis) -> None:  # type: ignore[no-untyped-def]
    """Every connection Tessera opens to a rediss:// URL (client, mirror, rate limiter)
    starts with a TLS handshake; the password never appears on the wire."""
    tls_redis.client().flushall()
    relay = Relay(tls_redis.port).start()
    try:
        app = make_app(REDIS_URL=tls_redis.url(relay.port), COOKIE_SECURE=False)
        make_user(app, "alice")
        auth, token = _login(app)
        _warm(auth, token)
        assert _mirror(app).live
        assert auth.login(password="wrong").status_code == 401  # counted by the rate limiter
        assert auth.logout().status_code == 200  # a revocation write
        assert auth.me(token).status_code == 401
        assert tls_redis.client().keys("*tessera-rl*")  # the limiter went through TLS too
    finally:
        relay.stop()
    assert len(relay.openings) >= 3  # the client's and the mirror's two, at least
    assert all(opening.startswith(b"\x16\x03") for opening in relay.openings)  # TLS records
    assert REDIS_PASSWORD.encode() not in relay.sent
    assert b"AUTH" not in relay.sent


def test_a_killed_subscriber_empties_the_mirror_until_tracking_is_back(make_app, transport) -> None:  # type: ignore[no-untyped-def]
    url, admin = transport
    app = make_app(REDIS_URL=url, COOKIE_SECURE=False)
    make_user(app, "alice")
    auth, token = _login(app)
    _warm(auth, token)
    mirror = _mirror(app)
    assert mirror.live and len(mirror) > 0
    assert admin.client_kill_filter(_type="pubsub") >= 1  # (earlier tests' apps may linger)
    before = _reads(admin)
    assert auth.me(token).status_code == 200
    assert not mirror.live and len(mirror) == 0  # emptied at the first check after the kill
    assert _reads(admin) > before  # and that check went to Redis
    # Until tracking is back every check asks the store, so a revocation counts at once.
    auth2, token2 = _login(app)
    assert auth2.logout().status_code == 200
    assert auth.me(token2).status_code == 401
    wait_until(lambda: auth.me(token).status_code == 200 and mirror.live, timeout=10)
    _warm(auth, token)
    before = _reads(admin)
    for _ in range(5):
        assert auth.me(token).status_code == 200
    assert _reads(admin) == before  # tracking is back: the steady state again


def test_a_silently_dead_connection_stops_the_mirror(make_app, redis_url, redis_server) -> None:  # type: ignore[no-untyped-def]
    """A lost network path (no FIN, no RST) between the mirror and Redis: the PING
    health check notices, and the revocation that the mirror never heard of counts."""
    relay = Relay(redis_server.port).start()
    try:
        app = make_app(REDIS_URL=f"redis://127.0.0.1:{relay.port}/0", COOKIE_SECURE=False)
        direct = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False, keys=False)
        make_user(app, "alice")
        auth, token = _login(app)
        _warm(auth, token, redis_server.client())
        assert _mirror(app).live
        relay.freeze()
        revoker = AuthActions(direct.test_client())
        assert revoker.client.post("/auth/logout-all", headers=bearer(token)).status_code == 200
        # The invalidation is stuck in the frozen relay; the mirror must stop answering.
        wait_until(lambda: auth.me(token).status_code == 401, timeout=10, interval=0.2)
        assert not _mirror(app).live or len(_mirror(app)) == 0
    finally:
        relay.stop()


@pytest.mark.slow
def test_revocations_reach_two_workers_and_a_second_instance(make_app, database_url, transport,
                                                            tmp_path) -> None:  # type: ignore[no-untyped-def]
    url, _ = transport
    here = make_app(REDIS_URL=url, COOKIE_SECURE=False)
    make_user(here, "alice")
    there = AppServer({
        "TESSERA_DATABASE_URL": database_url, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_ISSUER": "http://localhost", "TESSERA_COOKIE_SECURE": "false",
        "TESSERA_INSTANCE_PATH": str(tmp_path / "srv"), "TESSERA_REDIS_URL": url,
    }, workers=2, threads=2).start()
    try:
        tokens = [login_token(there.url, "alice", PASSWORD) for _ in range(3)]
        local = AuthActions(here.test_client())
        for token in tokens:  # warm both workers' mirrors and this instance's
            for _ in range(4):
                assert call("GET", there.url + "/api/me", headers=bearer(token)).status == 200
            _warm(local, token)
        # Revoked here: refused by both workers there, on the very next requests.
        assert local.client.post("/auth/logout", headers=bearer(tokens[0])).status_code == 200
        for _ in range(8):
            assert call("GET", there.url + "/api/me", headers=bearer(tokens[0])).status == 401
            assert call("GET", there.url + "/api/me", headers=bearer(tokens[1])).status == 200
        # Revoked there (one of its workers): refused here at once.
        assert call("POST", there.url + "/auth/logout-all", headers=bearer(tokens[1])).status == 200
        assert local.me(tokens[2]).status_code == 401
        for _ in range(8):
            assert call("GET", there.url + "/api/me", headers=bearer(tokens[2])).status == 401
    finally:
        there.stop()


def test_the_mirror_refuses_connections_that_reached_two_servers(redis_server) -> None:  # type: ignore[no-untyped-def]
    """Under Sentinel each mirror connection asks for the primary on its own; across a
    failover they can land on two servers. Tracking on one, redirected to the
    subscriber's client id, would then reach a stranger holding that id on the other."""
    other = PlainRedis().start()
    held: list[redis.Connection] = []
    try:
        with redis_server.client() as admin:
            subscriber_id = int(admin.client_id()) + 1  # the next id there
        while True:  # a stranger on the other server with the subscriber's id
            stranger = redis.Connection(port=other.port)
            stranger.send_command("CLIENT", "ID")
            held.append(stranger)
            stranger_id = int(stranger.read_response())
            if stranger_id >= subscriber_id:
                break
        assert stranger_id == subscriber_id
        ports = iter([redis_server.port, other.port])
        mirror = RevocationMirror(
            lambda: redis.Connection(port=next(ports), protocol=2), PREFIX)
        assert mirror.lookup([PREFIX + "epoch"]) is None
        assert not mirror.live
        with other.client() as admin:
            tracking = [c for c in admin.client_list() if "t" in c["flags"]]
        assert tracking == []  # nobody's invalidations were sent to the stranger
    finally:
        for connection in held:
            connection.disconnect()
        other.stop()
