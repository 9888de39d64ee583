"""The Redis side of revocation (SPEC §6): writes, the hot-path check, repair, rebuild.

Writes go to the database first (committed, by the caller), then to Redis
through a small Lua script that keeps the later cutoff and the longer
lifetime of each key (a second, shorter revocation or a rebuild racing a
revoke-all can never shorten or lower one). The per-request check reads the
token's keys with the epoch key in one ``MGET``, and believes the answer
only while the database's trust row names that epoch and the server it comes
from (``revocation_trust``). Anything else (a failed write anywhere, a
restart, a restore from a snapshot, a failover) sends the check to the
database, and Redis is rebuilt from it.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .revocation_rules import (
    EPOCH_KEY,
    REBUILD_LOCK,
    RevocationQuery,
    StoreUnavailable,
    epoch_of,
    micros,
    parse_value,
    redis_key,
    verdict,
)
from .revocation_trust import TrustKeeper, fetch_identity
from .revocation_writes import live_rows

__all__ = ["ASK_DATABASE", "Entry", "RedisRevocations", "Row", "WaitPolicy"]

log = logging.getLogger(__name__)

# Keep the later value (a user cutoff) and the longer life of every key: a second,
# shorter revocation or a rebuild racing a revoke-all never lowers or shortens one.
# The value is written as given (a Lua number would print as 1.8e+15).
_KEEP_LATEST = """
for i, key in ipairs(KEYS) do
  local value, ttl = ARGV[2 * i - 1], ARGV[2 * i]
  local current = redis.call('GET', key)
  if not current then
    redis.call('SET', key, value, 'PX', ttl)
  else
    if tonumber(value) > (tonumber(current) or 0) then
      redis.call('SET', key, value, 'KEEPTTL')
    end
    redis.call('PEXPIRE', key, ttl, 'GT')
  end
end
return #KEYS
"""
ASK_DATABASE = object()  # a check's answer: "Redis cannot say; ask the database"
Entry = tuple[str, str, datetime | None]  # kind, value, cutoff (users only)
Row = tuple[str, str, datetime | None, datetime]  # the same, with its expiry


@dataclass(frozen=True)
class WaitPolicy:
    """Wait for ``replicas`` replicas to acknowledge every revocation (Redis ``WAIT``);
    one not acknowledged within ``timeout_ms`` counts as a failed write."""

    replicas: int = 0
    timeout_ms: int = 500


class _NotAcknowledged(Exception):
    """Fewer replicas than asked for acknowledged a revocation in time."""


# Each WAIT reply must come within the client's socket timeout (0.5 s, so that a dead
# Redis costs a request half a second): a longer wait is asked for as several WAITs in
# the same pipeline. Once the replicas have acknowledged, the later ones return at once.
_WAIT_SLICE_MS = 300


def _wait_slices(timeout_ms: int) -> list[int]:
    """``timeout_ms`` as consecutive WAIT timeouts of at most ``_WAIT_SLICE_MS`` each
    (never 0, which WAIT reads as "block for ever")."""
    whole, rest = divmod(max(1, timeout_ms), _WAIT_SLICE_MS)
    return [_WAIT_SLICE_MS] * whole + ([rest] if rest else [])


def _ttl_ms(expires_at: datetime, now: datetime) -> int:
    return max(1000, math.ceil((expires_at - now).total_seconds() * 1000))


class RedisRevocations:
    """Redis as the hot path of the revocation check, kept honest by the trust row."""

    def __init__(self, client: redis.Redis, state: Any, db_bind: Callable[[], Any],
                 fail_mode: str, wait: WaitPolicy) -> None:
        """``state`` is the process's ``RevocationState`` (outage flag, trust, mirror)."""
        self._redis = client
        self._state = state
        self._bind = db_bind
        self._fail_mode = fail_mode
        self._wait = wait
        self._keep_latest = client.register_script(_KEEP_LATEST)
        if state.trust is None:
            raise ValueError("a Redis-backed revocation service needs a TrustKeeper")
        self._trust: TrustKeeper = state.trust

    # --- writing

    def publish(self, entries: Sequence[Entry], expires_at: datetime, now: datetime) -> None:
        """Copy committed revocations to Redis; a failure makes Redis untrusted everywhere."""
        ttl_ms = _ttl_ms(expires_at, now)
        items = [(redis_key(k, v), micros(nb) if nb else 1, ttl_ms) for k, v, nb in entries]
        try:
            self._write(items)
        except (redis.RedisError, _NotAcknowledged) as exc:
            # The database already holds it; nobody may trust Redis until it is rebuilt.
            if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
                self._state.mark_down(type(exc).__name__)
            self.distrust(f"write_failed:{type(exc).__name__}", now)
            return
        if self._state.mirror is not None:
            self._state.mirror.forget([key for key, _, _ in items])

    def _write(self, items: Sequence[tuple[str, int, int]]) -> None:
        """One script call (keep the latest), and WAIT on the same connection if asked."""
        pipe = self._redis.pipeline(transaction=False)
        self._keep_latest(keys=[key for key, _, _ in items],
                          args=[part for _, value, ttl in items for part in (value, ttl)],
                          client=pipe)
        if self._wait.replicas:
            for slice_ms in _wait_slices(self._wait.timeout_ms):
                pipe.wait(self._wait.replicas, slice_ms)
        results = pipe.execute()
        if self._wait.replicas and int(results[-1]) < self._wait.replicas:
            raise _NotAcknowledged()

    def distrust(self, reason: str, now: datetime) -> None:
        """Stop every worker and host trusting Redis until a rebuild: the database row
        first (it survives restarts), then the epoch key (every reader sees that at once)."""
        log.warning("revocation store: Redis untrusted (%s)", reason)
        try:
            self._trust.store.distrust(reason, now)
        except SQLAlchemyError as exc:
            log.error("revocation store: cannot mark Redis untrusted in the database (%s)",
                      type(exc).__name__)
        try:
            self._redis.delete(EPOCH_KEY)  # allowed even when Redis refuses writes (maxmemory)
        except redis.RedisError:
            pass  # then Redis cannot be read by anyone either, or the row above tells them
        self._trust.reread()

    # --- checking

    def check(self, lookup: RevocationQuery, now: datetime, repair: bool = True) -> object:
        """The verdict (None or a reason), or ``ASK_DATABASE``."""
        trust = self._trust
        # Re-reads the row and asks INFO once per interval; otherwise two comparisons.
        expected = trust.expected_epoch(self._redis)
        if expected is None and not trust.plausible():
            return self._untrusted(lookup, now, repair)
        keys = lookup.keys
        mirror = self._state.mirror
        generation = -1
        if mirror is not None:
            known = mirror.lookup(keys, lookup.born_key, lookup.iat or 0.0)
            if known is not None and expected is not None and known[0] == expected:
                return _verdict_from(lookup, known)  # steady state: no round trip
            generation = mirror.begin_read()
        try:
            values = self._redis.mget(keys)  # the one round trip of SPEC §6 (a new list)
        except redis.RedisError as exc:
            self._state.mark_down(type(exc).__name__)
            if self._fail_mode == "closed":
                raise StoreUnavailable() from None
            return ASK_DATABASE
        self._state.mark_up()
        # A new connection reports its server before the MGET runs on it, so a
        # restarted or replaced server is already known here.
        if not trust.agrees(epoch_of(values[0])) and not trust.agrees_after_reread(
                epoch_of(values[0])):
            return self._untrusted(lookup, now, repair)
        if mirror is not None:
            mirror.store(keys, values, generation)
        return _verdict_from(lookup, values)

    def _untrusted(self, lookup: RevocationQuery, now: datetime, repair: bool) -> object:
        """Redis may have lost revocations: repair it and ask again, else answer from
        the database (``open``) or refuse to answer (``closed``, as when Redis is down)."""
        trust = self._trust
        changed = trust.row.trusted
        if repair and trust.repair_due():
            if self.repair(now):
                return self.check(lookup, now, repair=False)
            trust.repair_failed()
        trust.warn_untrusted("the server or its epoch changed" if changed
                             else "not rebuilt since the last failure")
        if self._state.on_fallback is not None:
            self._state.on_fallback("untrusted")
        if self._fail_mode == "closed":
            raise StoreUnavailable()
        return ASK_DATABASE

    # --- repair

    def repair(self, now: datetime) -> bool:
        """Make Redis trusted again: distrust a server the database still trusts but that
        disagrees (restart, restore, failover, lost epoch), then rebuild."""
        trust = self._trust
        if not trust.repair_lock.acquire(blocking=False):
            return False  # another thread of this process is at it
        try:
            row = trust.reread()
            if row.trusted:
                try:
                    trust.observe(fetch_identity(self._redis))
                    seen = self._redis.get(EPOCH_KEY)
                except redis.RedisError:
                    return False
                if trust.agrees(epoch_of(seen)):
                    return True  # someone else repaired it meanwhile
                self.distrust("redis_changed", now)
            return self.rebuild(now)
        finally:
            trust.repair_lock.release()

    def rebuild(self, now: datetime) -> bool:
        """Copy every live revocation into Redis and trust a new epoch; one process at a
        time (a Redis lock), and only if no write failed meanwhile (the row's generation)."""
        epoch = uuid.uuid4().hex
        try:
            lock = self._redis.lock(REBUILD_LOCK, timeout=60, blocking=False)
            if not lock.acquire():
                return False  # another process is rebuilding; we answer from the database
        except redis.RedisError as exc:
            log.warning("revocation store: cannot rebuild Redis yet (%s)", type(exc).__name__)
            return False
        try:
            return self._rebuild_locked(epoch, now)
        except (redis.RedisError, SQLAlchemyError) as exc:
            log.warning("revocation store: rebuild failed (%s)", type(exc).__name__)
            return False
        finally:
            try:
                lock.release()
            except redis.RedisError:
                pass  # expired or Redis gone: nothing left to release

    def _rebuild_locked(self, epoch: str, now: datetime) -> bool:
        trust = self._trust
        before = trust.store.claim(now)  # read before the rows: a later failure moves it
        if before.trusted:
            trust.adopt(before)
            return True  # a rebuild finished while we waited for the lock
        identity = fetch_identity(self._redis)
        if identity.startswith("evicting:"):
            trust.refuse_evicting(identity)
            return False
        self.copy(self.live_rows(now), now)
        if fetch_identity(self._redis) != identity:
            return False  # the server changed under us (restart, failover): start again
        self._redis.set(EPOCH_KEY, epoch)
        if not trust.store.confirm(before.generation, epoch, identity, now):
            return False  # a write failed while we copied: Redis stays untrusted
        trust.observe(identity)
        trust.reread()
        trust.trusted_again()
        log.info("revocation store: Redis rebuilt from the database (epoch %s)", epoch[:8])
        return True

    def live_rows(self, now: datetime) -> list[Row]:
        """Every revocation still in force, read in a session of its own."""
        with Session(self._bind()) as session:
            return live_rows(session, now)

    def copy(self, rows: Sequence[Row], now: datetime, batch: int = 1000) -> None:
        """Write ``rows`` into Redis, keeping whatever later cutoff or longer life is there."""
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            keys = [redis_key(kind, value) for kind, value, _, _ in chunk]
            args: list[int] = []
            for _, _, not_before, expires_at in chunk:
                args += (micros(not_before) if not_before else 1, _ttl_ms(expires_at, now))
            self._keep_latest(keys=keys, args=args)


def _verdict_from(lookup: RevocationQuery, values: Sequence[Any]) -> str | None:
    """Apply the rules to MGET-shaped values: [epoch, one value per lookup pair]."""
    return verdict(lookup, [(kind, parse_value(raw)) for (kind, _), raw
                            in zip(lookup.pairs, values[1:], strict=False) if raw is not None])
