"""How Tessera reaches Redis: one description for the client, the mirror and the limiter.

``REDIS_URL`` is read by redis-py itself (``redis://``, ``rediss://`` with its
``ssl_*`` query arguments, ``unix://``), so every connection Tessera opens is
made from the same class and settings as the client's: the revocation mirror
builds its two connections from the client's pool (:func:`connection_factory`),
never from a copied subset, and the rate limiter gets the same URL. With
``REDIS_SENTINELS`` the primary's address comes from the Sentinels
(``redis.sentinel.Sentinel``) and is asked again after every failover; the
URL then gives only the scheme (TLS or not), credentials, db and TLS options,
which the Sentinels are spoken to with as well (no password in clear text
next to a TLS primary).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.connection import AbstractConnection, parse_url
from redis.sentinel import Sentinel

__all__ = ["RedisTarget", "connect", "connection_factory", "limiter_storage"]

# A dead Redis must cost a request half a second, not the OS's minutes.
_TIMEOUTS: dict[str, Any] = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
_CLIENT_HEALTH_CHECK = 10  # seconds: a pooled connection idle that long is PINGed first


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: a URL, and optionally the Sentinels that know its primary."""

    # The URL and the Sentinels' password may hold credentials: never in a repr.
    url: str = field(repr=False)
    sentinels: tuple[str, ...] = ()  # "host:port" each
    service: str = "mymaster"
    sentinel_password: str | None = field(default=None, repr=False)

    def _server_kwargs(self) -> tuple[dict[str, Any], bool]:
        """The URL's connection settings without an address, and whether they ask for TLS."""
        kwargs = parse_url(self.url)
        connection_class = kwargs.pop("connection_class", redis.Connection)
        kwargs.pop("host", None)
        kwargs.pop("port", None)
        return kwargs, issubclass(connection_class, redis.SSLConnection)

    def _sentinel_setup(self) -> tuple[list[tuple[str, int]], dict[str, Any], dict[str, Any]]:
        """(Sentinel addresses, kwargs for the primary's connections, kwargs for the Sentinels')."""
        server, tls = self._server_kwargs()
        addresses = [(host, int(port)) for host, _, port in
                     (entry.rpartition(":") for entry in self.sentinels)]
        tls_options = {k: v for k, v in server.items() if k.startswith("ssl_")}
        primary = {**server, **_TIMEOUTS, "health_check_interval": _CLIENT_HEALTH_CHECK,
                   "ssl": tls}
        # The Sentinels have their own password (or none): never the primary's.
        sentinels = {**tls_options, **_TIMEOUTS, "ssl": tls, "username": None,
                     "password": self.sentinel_password}
        return addresses, primary, sentinels


def connect(target: RedisTarget) -> redis.Redis:
    """The app's Redis client; lazy (nothing is opened here)."""
    if not target.sentinels:
        return redis.Redis.from_url(target.url, **_TIMEOUTS,
                                    health_check_interval=_CLIENT_HEALTH_CHECK)
    addresses, primary, sentinels = target._sentinel_setup()
    # master_for asks the Sentinels for the primary on connect, and again when a
    # connection breaks, so the client follows a failover.
    sentinel = Sentinel(addresses, sentinel_kwargs=sentinels, **primary)  # type: ignore[no-untyped-call]
    client: redis.Redis = sentinel.master_for(target.service)  # type: ignore[no-untyped-call]
    return client


def connection_factory(client: redis.Redis, **overrides: Any) -> Callable[[], AbstractConnection]:
    """New connections made exactly as ``client``'s pool makes them (class and settings),
    with ``overrides`` (e.g. the protocol) on top; each one unpooled, owned by the caller.

    With Sentinel the class is redis-py's Sentinel-managed connection, which
    asks the Sentinels for the current primary every time it connects.
    """
    pool = client.connection_pool
    connection_class = pool.connection_class
    kwargs = {**pool.connection_kwargs, **overrides}
    return lambda: connection_class(**kwargs)


def limiter_storage(target: RedisTarget) -> tuple[str, dict[str, Any]]:
    """The flask-limiter storage URI and options for ``target`` (limits' own schemes)."""
    if not target.sentinels:
        uri = target.url
        if uri.startswith("unix://"):
            uri = "redis+unix://" + uri[len("unix://"):]  # limits' name for a socket
        return uri, dict(_TIMEOUTS)
    addresses, primary, sentinels = target._sentinel_setup()
    uri = "redis+sentinel://{}/{}".format(
        ",".join(f"{host}:{port}" for host, port in addresses), target.service)
    # Counters are read from the primary: a replica's could be behind.
    return uri, {**primary, "sentinel_kwargs": sentinels, "use_replicas": False}
