"""Whether the Redis denylist may be trusted: a fact the database keeps (SPEC §6).

Redis is a cache of the database's revocations, and it can lose some without
losing the marker a check reads: a restart from an RDB or AOF file brings
back an older epoch key with older data, a failover promotes a replica that
missed the last writes, a full Redis refuses writes while it still answers
reads. So a check trusts what Redis says only when three things agree, none
of them kept in one process's memory alone:

- the ``revocation_trust`` row: ``trusted``, the ``epoch`` value Redis must
  hold, and the ``identity`` of the server the last rebuild wrote into
  (``run_id`` from INFO server, which every restart changes, and
  ``master_replid`` from INFO replication, which a promotion changes);
- Redis's epoch key, read in the same MGET as the revocation keys (or kept
  by the mirror, which sees it change);
- the identity of the server this process's connections talk to, read with
  INFO on every new connection before it serves a command, and again every
  ``recheck`` seconds.

Steady state: no round trip is added per request. The row is re-read and
INFO sent at most once per ``recheck`` seconds per process.

A revocation whose Redis write fails (or is not acknowledged by the replicas
asked for) first marks the row untrusted (``generation`` + 1) and then
deletes the epoch key. In that order: a rebuild whose epoch lands after the
delete either read the generation before the mark (and cannot confirm) or
read the rows after the revocation was committed (and holds it). A rebuild
copies the database into Redis, writes a new epoch and marks the row trusted
with it, but only if ``generation`` did not move while it copied, so a failure
during a rebuild is never forgotten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from ..models import RevocationTrust

__all__ = ["TrustKeeper", "TrustRow", "TrustStore", "UNTRUSTED", "fetch_identity"]

log = logging.getLogger(__name__)

_ROW_ID = 1
_INFO = ("INFO", "server", "replication", "memory")


@dataclass(frozen=True)
class TrustRow:
    """What the database says about Redis (``epoch`` as bytes, as MGET returns it)."""

    generation: int
    trusted: bool
    epoch: bytes | None
    identity: str | None


UNTRUSTED = TrustRow(-1, False, None, None)


def identity_of(raw: Any) -> str:
    """``run_id/master_replid`` from a raw INFO reply; ``evicting:<policy>`` when the
    server may drop keys on its own (any policy but ``noeviction``): such a cache is
    never trusted, since it could lose a revocation without any sign."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    policy = fields.get("maxmemory_policy", "noeviction").strip()
    if policy != "noeviction":
        return f"evicting:{policy}"
    return f"{fields.get('run_id', '').strip()}/{fields.get('master_replid', '').strip()}"


def fetch_identity(client: redis.Redis) -> str:
    """The identity of the server ``client`` talks to now (one INFO)."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_command(*_INFO)
        return identity_of(connection.read_response())
    finally:
        pool.release(connection)


class TrustStore:
    """The ``revocation_trust`` row, read and written in transactions of its own, so
    that a request's pending work is never committed with it."""

    def __init__(self, engine_of: Callable[[], Engine]) -> None:
        self._engine_of = engine_of

    def read(self) -> TrustRow:
        """The row; a missing row is untrusted."""
        with Session(self._engine_of()) as session:
            row = session.get(RevocationTrust, _ROW_ID)
            return _row(row) if row is not None else UNTRUSTED

    def distrust(self, reason: str, now: datetime) -> None:
        """Mark Redis untrusted for every worker and host, until a rebuild has run."""
        with Session(self._engine_of()) as session, session.begin():
            done = session.execute(
                update(RevocationTrust).where(RevocationTrust.id == _ROW_ID)
                .values(generation=RevocationTrust.generation + 1, trusted=False, epoch=None,
                        reason=reason[:64], changed_at=now)
                .execution_options(synchronize_session=False))
            if done.rowcount == 0:  # type: ignore[attr-defined]
                self._create(session, now, reason)

    def claim(self, now: datetime) -> TrustRow:
        """The row before a rebuild (created untrusted when missing)."""
        with Session(self._engine_of()) as session, session.begin():
            row = session.get(RevocationTrust, _ROW_ID)
            if row is None:
                row = self._create(session, now, "created")
            return _row(row)

    def confirm(self, generation: int, epoch: str, identity: str, now: datetime) -> bool:
        """Trust ``epoch`` on ``identity``, unless the row moved since ``generation``."""
        with Session(self._engine_of()) as session, session.begin():
            done = session.execute(
                update(RevocationTrust)
                .where(RevocationTrust.id == _ROW_ID, RevocationTrust.generation == generation)
                .values(generation=generation + 1, trusted=True, epoch=epoch,
                        identity=identity, reason="rebuilt", changed_at=now)
                .execution_options(synchronize_session=False))
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    @staticmethod
    def _create(session: Session, now: datetime, reason: str) -> RevocationTrust:
        row = RevocationTrust(id=_ROW_ID, generation=0, trusted=False, epoch=None,
                              identity=None, reason=reason[:64], changed_at=now)
        try:
            with session.begin_nested():  # another process may create it first
                session.add(row)
        except IntegrityError:
            found = session.scalars(select(RevocationTrust).where(
                RevocationTrust.id == _ROW_ID).with_for_update()).one()
            found.generation += 1  # a distrust must still move the generation
            found.trusted = False
            return found
        return row


def _row(row: RevocationTrust) -> TrustRow:
    epoch = row.epoch.encode() if row.epoch is not None else None
    return TrustRow(row.generation, row.trusted, epoch, row.identity)


class TrustKeeper:
    """One process's view of the trust row and of the server it talks to.

    ``on_connect`` is installed as the Redis client's connection hook: every new
    connection reports the server's identity before it carries a command, so a
    restarted or replaced server is noticed by the very read that reaches it.
    """

    def __init__(self, store: TrustStore, recheck_seconds: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._recheck = recheck_seconds
        self._monotonic = monotonic
        self._row = UNTRUSTED
        self._due = 0.0  # when to re-read the row and the server's identity
        self.identity: str | None = None
        self.repair_lock = threading.Lock()  # one repair at a time in this process
        self._repair_due = 0.0
        self._warned = False
        self._evicting_logged = False

    @property
    def row(self) -> TrustRow:
        return self._row

    def on_connect(self, connection: redis.connection.AbstractConnection) -> None:
        """redis-py ``redis_connect_func``: the usual handshake, then INFO."""
        connection.on_connect()
        connection.send_command(*_INFO)
        self.observe(identity_of(connection.read_response()))

    def observe(self, identity: str) -> None:
        if identity != self.identity and self.identity is not None:
            log.warning("revocation store: the Redis server changed (%s -> %s)",
                        self.identity[:12], identity[:12])
        self.identity = identity

    def expected_epoch(self, client: redis.Redis) -> bytes | None:
        """The epoch Redis must show for its answers to count (the hot path's one call);
        None: untrusted, or this process has not seen the server yet (``plausible``)."""
        if self._monotonic() >= self._due:
            self.tick(client)
        row = self._row
        return row.epoch if row.trusted and self.identity == row.identity else None

    def tick(self, client: redis.Redis) -> None:
        """Re-read the row and the server's identity (every ``recheck`` seconds)."""
        self._due = self._monotonic() + self._recheck
        try:
            self.observe(fetch_identity(client))
        except redis.RedisError:
            pass  # the check's own read fails too, and says so
        self.reread()

    def reread(self) -> TrustRow:
        """Read the row now (one query)."""
        try:
            self._row = self.store.read()
        except SQLAlchemyError as exc:
            # Nothing can be revoked while the database is down (it is written
            # first), so the last view stays; the next interval tries again.
            log.warning("revocation store: cannot read the trust row (%s)", type(exc).__name__)
        return self._row

    def adopt(self, row: TrustRow) -> None:
        self._row = row

    def agrees(self, epoch: bytes | None) -> bool:
        """Whether Redis, showing ``epoch``, may be believed."""
        row = self._row
        return (row.trusted and epoch is not None and epoch == row.epoch
                and self.identity is not None and self.identity == row.identity)

    def agrees_after_reread(self, epoch: bytes | None) -> bool:
        """``agrees``, after reading the row again (a rebuild elsewhere moves the epoch)."""
        self.reread()
        return self.agrees(epoch)

    def plausible(self) -> bool:
        """Whether the database trusts the server this process talks to."""
        row = self._row
        return row.trusted and (self.identity is None or self.identity == row.identity)

    def repair_due(self) -> bool:
        """After a failed repair, the next attempt waits ``recheck`` seconds (a Redis
        that refuses writes is not asked to rebuild on every request)."""
        return self._monotonic() >= self._repair_due

    def repair_failed(self) -> None:
        self._repair_due = self._monotonic() + self._recheck

    def warn_untrusted(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("revocation store: Redis may have lost revocations (%s); checks use "
                        "the database until it is rebuilt", why)

    def refuse_evicting(self, identity: str) -> None:
        """Say once why a Redis that may evict keys is never rebuilt into."""
        if not self._evicting_logged:
            self._evicting_logged = True
            log.error("revocation store: Redis maxmemory-policy is %s; it may drop revocations "
                      "on its own, so it is never trusted (set noeviction)",
                      identity.removeprefix("evicting:"))

    def trusted_again(self) -> None:
        if self._warned:
            self._warned = False
            log.info("revocation store: Redis rebuilt and trusted again")
