"""Checks the Redis revocation mirror makes on the server it tracks (SPEC §10): a
primary, the same one for both connections, and the one the Sentinels name."""

from __future__ import annotations

from typing import Any

import redis
from redis.connection import AbstractConnection

__all__ = ["at_primary", "require_primary", "require_same_server"]


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
