"""The Redis revocation mirror's connections (SPEC §10): setting tracking up, and the
checks on the server it tracks: a primary, the same one for both connections, and
the one the Sentinels name."""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

import redis
from redis.connection import AbstractConnection

__all__ = ["at_primary", "open_tracking", "require_primary", "require_same_server"]

_CHANNEL = "__redis__:invalidate"


def open_tracking(
    connect: Callable[[], AbstractConnection], prefix: str,
) -> tuple[AbstractConnection, AbstractConnection, select.poll, Any]:
    """Two new connections from ``connect``: a subscriber to the invalidations and a
    tracker with broadcast tracking of ``prefix`` on, redirected to it; with one poll
    object over both sockets and the subscriber's client id. Closes both on failure."""
    # RESP2 connections (the factory's promise): invalidations then arrive as plain
    # pub/sub messages, which a raw connection reads like any reply.
    subscriber, tracker = connect(), connect()
    try:
        for connection in (subscriber, tracker):
            # connect() first, as redis-py's pool does: a Sentinel-managed
            # connection asks the Sentinels for the primary there, not on send.
            connection.connect()
        require_same_server(subscriber, tracker)
        require_primary(tracker)
        subscriber.send_command("CLIENT", "ID")
        client_id = subscriber.read_response()
        subscriber.send_command("SUBSCRIBE", _CHANNEL)
        subscriber.read_response()  # the subscribe confirmation
        tracker.send_command("CLIENT", "TRACKING", "on", "REDIRECT", client_id, "BCAST",
                             "PREFIX", prefix)
        if tracker.read_response() not in (b"OK", "OK"):
            raise redis.ResponseError("CLIENT TRACKING refused")
        poller = select.poll()
        for connection in (subscriber, tracker):
            sock = connection._sock  # redis-py keeps no public handle on it
            if sock is None:
                raise redis.ConnectionError("no socket")
            poller.register(sock, select.POLLIN | select.POLLPRI)
    except (redis.RedisError, OSError):
        subscriber.disconnect()
        tracker.disconnect()
        raise
    return subscriber, tracker, poller, client_id


def at_primary(subscriber: AbstractConnection | None) -> bool:
    """Under Sentinel, whether the Sentinels still name the server tracked here.

    A primary that Sentinel replaced but could not demote (alive, cut off
    from the Sentinels, or not yet reconfigured: about ten seconds) keeps
    answering as a primary; asking once per health check moves the mirror
    within a second of the switch. redis-py's pool proxy also drops the
    client's idle connections when the answer changes, so the checks' reads
    move with it. Sentinels that cannot be asked leave things as they are.
    """
    pool: Any = getattr(subscriber, "connection_pool", None)
    if subscriber is None or not hasattr(pool, "get_master_address"):
        return True  # not Sentinel-managed
    try:
        host, port = pool.get_master_address()
    except (redis.RedisError, OSError):
        return True
    return (host, port) == (getattr(subscriber, "host", None),
                            getattr(subscriber, "port", None))


def require_primary(connection: AbstractConnection) -> None:
    """Refuse a replica: its invalidations trail the primary's writes (replication lag).

    Sentinel can name a demoted primary for a moment after a failover; the
    mirror then retries. A user whose ACL forbids ROLE skips this check.
    """
    connection.send_command("ROLE")
    try:
        role = connection.read_response()
    except redis.exceptions.NoPermissionError:
        return
    if not isinstance(role, list) or role[0] not in (b"master", "master"):
        raise redis.ConnectionError("not a primary")


def require_same_server(first: AbstractConnection, second: AbstractConnection) -> None:
    """Both connections on one server: under Sentinel each asks for the primary on its
    own, and across a failover the answers can differ. Tracking redirected to a client
    id on the other server would reach some stranger, or nobody, in silence."""
    def address(connection: AbstractConnection) -> tuple[object, ...]:
        return tuple(getattr(connection, name, None) for name in ("host", "port", "path"))

    if address(first) != address(second):
        raise redis.ConnectionError("the mirror's connections reached different servers")
