"""Revocation through Redis Sentinel, across a failover (issue 15, acceptance 2).

A primary, one replica and three Sentinels (tests/support/redis_servers.py).
The replica is made to miss the last revocations on purpose (it cannot log
back in to the primary), the primary dies, and Sentinel promotes the replica.
The client, the mirror and the rate limiter of two gunicorn workers and of a
second instance must follow the new primary, and no revoked token may come
back: the new primary is a cache that lost writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app.core.redis_connections import RedisTarget, connect, connection_factory
from app.core.revocation import PREFIX
from app.core.revocation_mirror import RevocationMirror
from tests.conftest import TEST_KEK
from tests.support.actions import AuthActions
from tests.support.http import call, login_token
from tests.support.redis_servers import SERVICE, SentinelGroup
from tests.support.servers import AppServer, wait_until
from tests.support.tokens import PASSWORD, bearer, make_user


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    group = SentinelGroup().start()
    yield group
    group.stop()


def _server(database_url: str, tmp_path: Any, group: SentinelGroup, fail_mode: str) -> AppServer:
    return AppServer({
        "TESSERA_DATABASE_URL": database_url, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_ISSUER": "http://localhost", "TESSERA_COOKIE_SECURE": "false",
        "TESSERA_INSTANCE_PATH": str(tmp_path / "srv"), "TESSERA_REDIS_URL": group.url,
        "TESSERA_REDIS_SENTINELS": json.dumps(group.sentinel_addresses),
        "TESSERA_REDIS_SENTINEL_SERVICE": SERVICE, "TESSERA_REVOCATION_FAIL_MODE": fail_mode,
    }, workers=2, threads=2).start()


class _Probe:
    """Asks both instances about tokens and keeps every answer a revoked token got."""

    def __init__(self, server: AppServer, local: AuthActions) -> None:
        self.server, self.local = server, local
        self.revoked: list[str] = []
        self.revoked_answers: list[int] = []

    def statuses(self, token: str, times: int = 6) -> set[int]:
        """Answers from the gunicorn workers (new connections: both workers) and from here."""
        seen = [call("GET", self.server.url + "/api/me", headers=bearer(token)).status
                for _ in range(times)]
        seen.append(self.local.me(token).status_code)
        if token in self.revoked:
            self.revoked_answers += seen
        return set(seen)

    def sweep(self) -> None:
        for token in self.revoked:
            self.statuses(token)


def _reads(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("mget", "get"))


@pytest.mark.slow
@pytest.mark.parametrize("fail_mode", ["open", "closed"])
def test_failover_to_a_replica_that_missed_the_last_revocations(
        make_app, database_url, tmp_path, sentinel_group, fail_mode) -> None:  # type: ignore[no-untyped-def]
    group = sentinel_group
    here = make_app(**group.settings(), COOKIE_SECURE=False, REVOCATION_FAIL_MODE=fail_mode)
    make_user(here, "alice")
    make_user(here, "bob")
    there = _server(database_url, tmp_path, group, fail_mode)
    try:
        local = AuthActions(here.test_client())
        probe = _Probe(there, local)
        logged_out, jti_only, valid = (login_token(there.url, "alice", PASSWORD) for _ in range(3))
        bob = login_token(there.url, "bob", PASSWORD)
        for token in (logged_out, jti_only, valid, bob):  # warm every cache and mirror
            assert probe.statuses(token) == {200}
        assert call("POST", there.url + "/auth/login",  # the rate limiter counts on the primary
                    json_body={"username": "alice", "password": "wrong"}).status == 401
        assert group.servers[0].client().keys("*tessera-rl*")

        group.cut_replication()  # from here on the replica misses every write
        assert call("POST", there.url + "/auth/logout", headers=bearer(logged_out)).status == 200
        assert local.client.post("/auth/logout-all", headers=bearer(bob)).status_code == 200
        with here.test_request_context():
            from datetime import UTC, datetime

            from app.security.revocation import revocations
            claims = _claims(jti_only)
            revocations().revoke_jti(claims["jti"], datetime.fromtimestamp(claims["exp"], UTC),
                                     datetime.now(UTC))
        probe.revoked += [logged_out, jti_only, bob]
        assert not group.servers[1].client().keys(PREFIX + "jti:*")  # it really missed them
        probe.sweep()

        group.servers[0].kill()  # the primary dies; nobody has failed over yet
        down = 503 if fail_mode == "closed" else 200
        assert probe.statuses(valid) == {down}
        probe.sweep()
        group.fail_over()

        wait_until(lambda: probe.statuses(valid) == {200}, timeout=20, interval=0.3)
        probe.sweep()
        # Everything follows the new primary: the mirror (no read with warm caches)...
        new_primary = group.servers[1].client()
        for _ in range(3):
            assert local.me(valid).status_code == 200
        before = _reads(new_primary)
        for _ in range(5):
            assert local.me(valid).status_code == 200
        assert _reads(new_primary) == before
        # ... the rate limiter ...
        assert call("POST", there.url + "/auth/login",
                    json_body={"username": "alice", "password": "wrong"}).status == 401
        assert new_primary.keys("*tessera-rl*")
        # ... and new revocations reach every worker and instance at once.
        second = login_token(there.url, "alice", PASSWORD)
        assert probe.statuses(second) == {200}
        assert local.client.post("/auth/logout", headers=bearer(valid)).status_code == 200
        probe.revoked.append(valid)
        assert call("POST", there.url + "/auth/logout", headers=bearer(second)).status == 200
        probe.revoked.append(second)
        probe.sweep()
        assert len(probe.revoked_answers) > 50
        assert probe.revoked_answers.count(200) == 0  # 0 revoked tokens accepted, ever
    finally:
        there.stop()


def _claims(token: str) -> dict[str, Any]:
    import jwt

    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_the_mirror_tracks_only_a_primary(sentinel_group) -> None:  # type: ignore[no-untyped-def]
    """A mirror pointed at a replica (Sentinel can name a demoted primary for a
    moment) stays off: the replica's invalidations trail the primary's writes."""
    group = sentinel_group
    target = RedisTarget(group.url, tuple(group.sentinel_addresses), SERVICE)
    client = connect(target)
    primary = RevocationMirror(connection_factory(client, protocol=2, health_check_interval=0),
                               PREFIX)
    assert primary.lookup([PREFIX + "epoch"]) is None  # unknown key, but tracking is on
    assert primary.live
    replica_client = redis.Redis(port=group.ports[1], password=client.connection_pool
                                 .connection_kwargs["password"])
    replica = RevocationMirror(connection_factory(replica_client, protocol=2,
                                                  health_check_interval=0), PREFIX)
    assert replica.lookup([PREFIX + "epoch"]) is None
    assert not replica.live


def _mirror_subscribers(client: redis.Redis) -> int:
    """Pub/sub clients that are not the Sentinels' own (theirs are named sentinel-...)."""
    return sum(1 for c in client.client_list(_type="pubsub")
               if not str(c.get("name", "")).startswith("sentinel"))


def test_a_replaced_primary_that_stays_up_is_left_at_once(make_app, sentinel_group) -> None:  # type: ignore[no-untyped-def]
    """Sentinel promoted the replica but cannot demote the old primary (cut off from the
    Sentinels, or not yet reconfigured): it stays a primary, keeps its clients, and
    never sees the revocations written to the new one."""
    group = sentinel_group
    # A long trust recheck: the core's own periodic INFO would send checks to the
    # database; this isolates what the connections guarantee by themselves.
    settings = {**group.settings(), "COOKIE_SECURE": False, "REVOCATION_TRUST_RECHECK": 3600}
    warm = make_app(**settings)
    make_user(warm, "alice")
    auth = AuthActions(warm.test_client())
    token = auth.login().get_json()["access_token"]
    for _ in range(3):
        assert auth.me(token).status_code == 200
    old, new = (server.client() for server in group.servers)
    assert _mirror_subscribers(old) == 1

    group.keep_old_primary()
    group.fail_over(old_primary_follows=False)
    assert old.info("replication")["role"] == "master"  # still up, still a primary
    other = make_app(**settings, keys=False)  # started after the switch: on the new primary
    assert AuthActions(other.test_client()).client.post(
        "/auth/logout-all", headers=bearer(token)).status_code == 200
    assert new.keys(PREFIX + "user:*") and not old.keys(PREFIX + "user:*")

    wait_until(lambda: auth.me(token).status_code == 401, timeout=10, interval=0.2)
    # The first instance's mirror has moved: both instances' mirrors track the new
    # primary, nothing is left on the old one.
    wait_until(lambda: auth.me(token).status_code == 401 and _mirror_subscribers(old) == 0
               and _mirror_subscribers(new) == 2, timeout=10, interval=0.2)
    before = _reads(new)
    for _ in range(5):
        assert auth.me(token).status_code == 401
    assert _reads(new) == before  # answered by the mirror again
