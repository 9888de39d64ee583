"""One description of Redis for the client, the mirror and the rate limiter (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.sentinel import SentinelConnectionPool, SentinelManagedSSLConnection

from app import ConfigError, create_app
from app.core.redis_connections import (
    RedisTarget,
    connect,
    connection_factory,
    limiter_storage,
)

TLS_URL = ("rediss://tessera:pw-123@redis.internal:6380/2?ssl_ca_certs=/etc/ca.pem"
           "&ssl_certfile=/etc/client.pem&ssl_keyfile=/etc/client.key&ssl_cert_reqs=required")
SENTINELS = ("10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379")


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"REDIS_URL": "http://pw-123@example.com"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://:pw-123@localhost/zero"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://:pw-123@localhost:6379/0?db=x"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://localhost", "REDIS_SENTINELS": "10.0.0.1:26379"},
         "REDIS_SENTINELS"),
        ({"REDIS_URL": "redis://localhost", "REDIS_SENTINELS": ["10.0.0.1"]}, "REDIS_SENTINELS"),
        ({"REDIS_URL": "redis://localhost", "REDIS_SENTINELS": ["h:99999"]}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": list(SENTINELS)}, "REDIS_URL"),
        ({"REDIS_URL": "unix:///run/redis.sock", "REDIS_SENTINELS": list(SENTINELS)},
         "REDIS_URL"),
    ],
)
def test_bad_redis_settings_stop_start_up_naming_them(  # type: ignore[no-untyped-def]
        base_config, settings, named, tmp_path) -> None:
    with pytest.raises(ConfigError, match=rf"setting {named}\b") as caught:
        create_app({**base_config, **settings}, instance_path=str(tmp_path))
    assert "pw-123" not in str(caught.value)  # the URL's password is never repeated


def test_the_url_is_read_by_redis_py_itself() -> None:
    client = connect(RedisTarget(TLS_URL))
    pool = client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert {k: pool.connection_kwargs[k] for k in (
        "host", "port", "db", "username", "password", "ssl_ca_certs", "ssl_certfile",
        "ssl_keyfile", "ssl_cert_reqs")} == {
        "host": "redis.internal", "port": 6380, "db": 2, "username": "tessera",
        "password": "pw-123", "ssl_ca_certs": "/etc/ca.pem", "ssl_certfile": "/etc/client.pem",
        "ssl_keyfile": "/etc/client.key", "ssl_cert_reqs": "required"}


@pytest.mark.parametrize("url", [TLS_URL, "unix:///run/redis/redis.sock?db=3",
                                 "redis://:pw@127.0.0.1:6379/1"])
def test_the_mirror_gets_the_clients_connection_class_and_settings(url: str) -> None:
    client = connect(RedisTarget(url))
    made = connection_factory(client, protocol=2)()
    pool = client.connection_pool
    assert type(made) is pool.connection_class
    expected = {k: v for k, v in pool.connection_kwargs.items()
                if k in ("host", "port", "path", "db", "username", "password")}
    assert {k: getattr(made, k) for k in expected} == expected
    assert made.protocol == 2


def test_sentinel_client_finds_the_primary_with_the_urls_tls_and_credentials() -> None:
    client = connect(RedisTarget(TLS_URL, SENTINELS, "tessera", "sentinel-pw"))
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "tessera"
    assert pool.connection_class is SentinelManagedSSLConnection
    assert pool.connection_kwargs["password"] == "pw-123"
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    made = connection_factory(client)()
    assert isinstance(made, SentinelManagedSSLConnection)
    sentinels: list[Any] = pool.sentinel_manager.sentinels
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_class)
            for s in sentinels] == [(f"10.0.0.{i}", redis.SSLConnection) for i in (1, 2, 3)]
    # The Sentinels get their own password, never the primary's.
    assert {s.connection_pool.connection_kwargs["password"] for s in sentinels} == {"sentinel-pw"}


@pytest.mark.parametrize(
    ("target", "uri"),
    [
        (RedisTarget("redis://:pw@127.0.0.1:6379/0"), "redis://:pw@127.0.0.1:6379/0"),
        (RedisTarget(TLS_URL), TLS_URL),
        (RedisTarget("unix:///run/redis.sock?db=1"), "redis+unix:///run/redis.sock?db=1"),
    ],
)
def test_limiter_storage_without_sentinels_is_the_same_url(target: RedisTarget, uri: str) -> None:
    assert limiter_storage(target) == (uri, {"socket_timeout": 0.5, "socket_connect_timeout": 0.5})


def test_limiter_storage_with_sentinels() -> None:
    uri, options = limiter_storage(RedisTarget(TLS_URL, SENTINELS, "tessera"))
    assert uri == "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/tessera"
    assert options["ssl"] is True and options["password"] == "pw-123" and options["db"] == 2
    assert options["use_replicas"] is False  # counters read on the primary only
    assert options["sentinel_kwargs"]["password"] is None  # not the primary's password
    assert options["sentinel_kwargs"]["ssl"] is True
    from limits.storage import storage_from_string

    storage = storage_from_string(uri, **options)  # what flask-limiter does with them
    assert storage.storage.connection_pool.connection_class is SentinelManagedSSLConnection


def test_a_redis_target_never_shows_its_credentials() -> None:
    """Settings hide REDIS_URL and REDIS_SENTINEL_PASSWORD; the target built from them too."""
    target = RedisTarget("rediss://tessera:url-secret@redis.example:6380/0",
                         sentinels=("s1:26379",), sentinel_password="sentinel-secret")
    shown = repr(target) + str(target)
    assert "url-secret" not in shown and "sentinel-secret" not in shown
