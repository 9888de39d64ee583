"""Revocation (SPEC §6): the database is the truth, Redis the hot path.

Writes go to the database first (committed), then to Redis through a small
Lua script that keeps the later cutoff and the longer lifetime of each key
(a second, shorter revocation or a rebuild racing a revoke-all can never
shorten or lower one). The per-request check reads the token's ``jti``, its
``sid``, its user cutoff (and a legacy token's hash) together with the epoch
key in one ``MGET``, and believes the answer only while the database's trust
row names that epoch and the server it comes from (``revocation_trust``).
Anything else (a failed write anywhere, a restart, a restore from a snapshot,
a failover) sends the check to the database, and Redis is rebuilt from it.
When Redis cannot be reached the check falls back to the database
(``fail_mode="open"``) or refuses to answer (``"closed"``).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import String, TextualSelect, bindparam, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, scoped_session

from ..models import AuthSession, Revocation, User
from ..models.base import UTCDateTime
from .revocation_mirror import RevocationMirror
from .revocation_trust import TrustKeeper, fetch_identity

__all__ = [
    "EPOCH_KEY",
    "RevocationListener",
    "RevocationQuery",
    "RevocationService",
    "RevocationState",
    "StoreUnavailable",
    "WaitPolicy",
    "redis_key",
]

log = logging.getLogger(__name__)

PREFIX = "tessera:rev:"
EPOCH_KEY = PREFIX + "epoch"
REBUILD_LOCK = PREFIX + "rebuild"
_REDIS_KIND = {"jti": "jti", "sid": "sid", "tokenhash": "th", "user": "user", "kid": "kid",
               "legacyuser": "lu"}
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
_REASONS = {"jti": "token_revoked", "tokenhash": "token_revoked", "sid": "session_revoked",
            "user": "user_revoked", "kid": "key_revoked", "legacyuser": "legacy_cutoff"}
# Kinds whose value is a cutoff: tokens issued before it are refused, later ones pass.
_CUTOFF_KINDS = frozenset({"user", "legacyuser"})


# Told of every revocation inside its transaction, before the commit (the security-event
# feed, app.events): (session, [(kind, value, cutoff)], expires_at, now, reason).
RevocationListener = Callable[
    [Any, Sequence[tuple[str, str, "datetime | None"]], datetime, datetime, str], None]


class StoreUnavailable(Exception):
    """Revocation state cannot be read and the fail mode is ``closed``."""


def redis_key(kind: str, value: str) -> str:
    """The Redis key of one revocation."""
    return f"{PREFIX}{_REDIS_KIND[kind]}:{value}"


def _micros(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


@dataclass(frozen=True)
class WaitPolicy:
    """Wait for ``replicas`` replicas to acknowledge every revocation (Redis ``WAIT``);
    one not acknowledged within ``timeout_ms`` counts as a failed write."""

    replicas: int = 0
    timeout_ms: int = 500


class _NotAcknowledged(Exception):
    """Fewer replicas than asked for acknowledged a revocation in time."""


@dataclass
class RevocationState:
    """What one process keeps between requests: whether Redis is down (log once), its
    view of the trust row (``trust``), and the mirror. Trust itself lives in the
    database and in Redis; this is a copy re-read at a bounded interval."""

    redis_down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    fallbacks: int = 0
    on_fallback: Callable[[str], None] | None = None
    # Local copy of the Redis keys, kept exact by invalidations (SPEC §10); None: off.
    mirror: RevocationMirror | None = None
    # The database's word on whether Redis may be believed (None without Redis).
    trust: TrustKeeper | None = None

    def mark_down(self, why: str) -> None:
        with self.lock:
            first = not self.redis_down
            self.redis_down = True
            self.fallbacks += 1
        if first:
            log.warning("revocation store: Redis unavailable (%s); using the database", why)
        if self.on_fallback is not None:
            self.on_fallback(why)

    def mark_up(self) -> None:
        if self.redis_down:
            with self.lock:
                self.redis_down = False
            log.info("revocation store: Redis is back; hot path resumed")


@dataclass(frozen=True)
class RevocationQuery:
    """What one token's check asks about: built once, reusable for every request
    that presents the token (its facts never change)."""

    pairs: tuple[tuple[str, str], ...]  # (kind, value)
    iat: int | None
    has_sid: bool
    keys: tuple[str, ...]  # the MGET keys: the epoch marker, then one per pair

    @classmethod
    def of(cls, *, jti: str | None, sid: str | None, user_id: int | None, iat: int | None,
           token_hash: str | None, kid: str | None = None,
           legacy: bool = False) -> RevocationQuery:
        """The query of one token. A ``legacy`` (HS256) token's ``sid`` may only get it
        refused: it does not vouch for the token within a cutoff's second, and the
        user's legacy cutoff (a password change) applies to it as well."""
        pairs: list[tuple[str, str]] = []
        if kid:
            pairs.append(("kid", kid))
        if jti:
            pairs.append(("jti", jti))
        if token_hash:
            pairs.append(("tokenhash", token_hash))
        if sid:
            pairs.append(("sid", sid))
        if user_id is not None:
            pairs.append(("user", str(user_id)))
            if legacy:
                pairs.append(("legacyuser", str(user_id)))
        keys = (EPOCH_KEY, *(redis_key(kind, value) for kind, value in pairs))
        return cls(tuple(pairs), iat, bool(sid) and not legacy, keys)


class RevocationService:
    """Revoke and check, over one database session and (optionally) one Redis client."""

    def __init__(
        self,
        # The app passes its scoped-session proxy (db.session): one service outlives every
        # request and serves every thread, so it must reach each call's own session.
        session: Session | scoped_session[Any],
        client: redis.Redis | None,
        *,
        state: RevocationState,
        fail_mode: str = "open",
        wait: WaitPolicy | None = None,
    ) -> None:
        self._db = session
        self._redis = client
        self._state = state
        self._fail_mode = fail_mode
        self._wait = wait or WaitPolicy()
        self._keep_latest = client.register_script(_KEEP_LATEST) if client is not None else None
        if client is not None and state.trust is None:
            raise ValueError("a Redis-backed revocation service needs a TrustKeeper")
        self.listeners: list[RevocationListener] = []  # see RevocationListener

    @property
    def state(self) -> RevocationState:
        """The per-process state (outage flag, trust view, mirror) this service keeps."""
        return self._state

    # --- writing

    def revoke_jti(self, jti: str, expires_at: datetime, now: datetime, reason: str = "") -> None:
        """Refuse the token with this ``jti`` until ``expires_at``."""
        self._write([("jti", jti, None)], expires_at, now, reason)

    def revoke_token_hash(self, token_hash: str, expires_at: datetime, now: datetime,
                          reason: str = "") -> None:
        """Refuse a legacy token without ``jti``, named by its SHA-256."""
        self._write([("tokenhash", token_hash, None)], expires_at, now, reason)

    def revoke_kid(self, kid: str, expires_at: datetime, now: datetime, reason: str = "") -> None:
        """Refuse every token signed by ``kid`` at once, on every worker.

        The keyring drops a revoked key within KEYRING_REFRESH; this entry makes
        the per-request check refuse its tokens before that (SPEC §4 "at once").
        """
        self._write([("kid", kid, None)], expires_at, now, reason)

    def revoke_session(self, sid: str, expires_at: datetime, now: datetime,
                       reason: str = "") -> None:
        """End a session: its refresh tokens and every access token it issued."""
        self._db.execute(update(AuthSession).where(AuthSession.id == sid,
                                                   AuthSession.revoked_at.is_(None))
                         .values(revoked_at=now).execution_options(synchronize_session=False))
        self._write([("sid", sid, None)], expires_at, now, reason)

    def revoke_user(self, user_id: int, now: datetime, expires_at: datetime,
                    reason: str = "") -> list[str]:
        """Every session of the user and every token issued before ``now``; returns the sids.

        The user's row is locked first (PostgreSQL ``FOR UPDATE``; on SQLite the
        UPDATE below takes the database's write lock), and a login confirms its new
        session under the same row (``sessions.confirm_new_session``): a login is
        either seen here and its session revoked, or it sees this cutoff and fails.
        """
        self._db.execute(select(User.id).where(User.id == user_id).with_for_update())
        sids = list(self._db.scalars(
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now).returning(AuthSession.id),
            execution_options={"synchronize_session": False}))
        entries: list[tuple[str, str, datetime | None]] = (
            [("sid", sid, None) for sid in sids] + [("user", str(user_id), now)])
        self._write(entries, expires_at, now, reason)
        return sids

    def revoke_legacy_user(self, user_id: int, now: datetime, expires_at: datetime,
                           reason: str = "") -> None:
        """Refuse the user's HS256 tokens issued before ``now`` (or without ``iat``);
        their sessions and ES256 tokens are untouched (a password change)."""
        self._write([("legacyuser", str(user_id), now)], expires_at, now, reason)

    def claim(self, kind: str, value: str, expires_at: datetime, now: datetime,
              reason: str = "") -> bool:
        """Insert this revocation unless it exists, in the caller's transaction: True if
        this call inserted it. One statement decides a race (a single-use exchange):
        a concurrent claimer waits on the unique (kind, value) and inserts nothing.
        The caller commits, then calls ``publish``."""
        insert = (postgresql_insert if self._db.get_bind().dialect.name == "postgresql"
                  else sqlite_insert)
        result = self._db.execute(
            insert(Revocation).values(kind=kind, value=value, not_before=None, created_at=now,
                                      expires_at=expires_at, reason=reason[:64])
            .on_conflict_do_nothing(index_elements=["kind", "value"])
            .returning(Revocation.id))  # a row back only if inserted (rowcount is unreliable here)
        inserted = result.first() is not None
        if inserted:
            self._tell([(kind, value, None)], expires_at, now, reason)
        return inserted

    def publish(self, kind: str, value: str, expires_at: datetime, now: datetime) -> None:
        """Copy a committed revocation (from ``claim``) to Redis, as ``_write`` does."""
        self._publish([(kind, value, None)], expires_at, now)

    def _write(self, entries: list[tuple[str, str, datetime | None]], expires_at: datetime,
               now: datetime, reason: str) -> None:
        """Database first, in one transaction; then Redis. A Redis write that fails
        makes Redis untrusted everywhere before this returns."""
        for kind, value, not_before in entries:
            self._upsert(kind, value, not_before, expires_at, now, reason)
        self._tell(entries, expires_at, now, reason)
        self._db.commit()
        self._publish(entries, expires_at, now)

    def _tell(self, entries: Sequence[tuple[str, str, datetime | None]], expires_at: datetime,
              now: datetime, reason: str) -> None:
        """The listeners, in the revocation's transaction: it commits with what they add."""
        for listener in self.listeners:
            listener(self._db, entries, expires_at, now, reason)

    def _publish(self, entries: list[tuple[str, str, datetime | None]], expires_at: datetime,
                 now: datetime) -> None:
        """Copy committed revocations to Redis; a failure makes Redis untrusted everywhere."""
        if self._redis is None:
            return
        ttl_ms = max(1000, math.ceil((expires_at - now).total_seconds() * 1000))
        items = [(redis_key(k, v), _micros(nb) if nb else 1, ttl_ms) for k, v, nb in entries]
        try:
            self._redis_write(items)
        except (redis.RedisError, _NotAcknowledged) as exc:
            # The database already holds it; nobody may trust Redis until it is rebuilt.
            if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
                self._state.mark_down(type(exc).__name__)
            self.distrust(f"write_failed:{type(exc).__name__}", now)
            return
        if self._state.mirror is not None:
            self._state.mirror.forget([key for key, _, _ in items])

    def _upsert(self, kind: str, value: str, not_before: datetime | None, expires_at: datetime,
                now: datetime, reason: str) -> None:
        row = self._db.scalars(select(Revocation).where(Revocation.kind == kind,
                                                        Revocation.value == value)).first()
        if row is None:
            try:
                with self._db.begin_nested():  # a concurrent revoker may insert it first
                    self._db.add(Revocation(kind=kind, value=value, not_before=not_before,
                                            created_at=now, expires_at=expires_at,
                                            reason=reason[:64]))
                return
            except IntegrityError:
                row = self._db.scalars(select(Revocation).where(
                    Revocation.kind == kind, Revocation.value == value)).one()
        # Never shorten a revocation, and keep the latest cutoff.
        row.expires_at = max(row.expires_at, expires_at)
        if not_before is not None:
            row.not_before = max(row.not_before or not_before, not_before)

    def _redis_write(self, items: Sequence[tuple[str, int, int]]) -> None:
        """One script call (keep the latest), and WAIT on the same connection if asked."""
        assert self._redis is not None and self._keep_latest is not None
        pipe = self._redis.pipeline(transaction=False)
        self._keep_latest(keys=[key for key, _, _ in items],
                          args=[part for _, value, ttl in items for part in (value, ttl)],
                          client=pipe)
        if self._wait.replicas:
            pipe.wait(self._wait.replicas, self._wait.timeout_ms)
        results = pipe.execute()
        if self._wait.replicas and int(results[-1]) < self._wait.replicas:
            raise _NotAcknowledged()

    def distrust(self, reason: str, now: datetime) -> None:
        """Stop every worker and host trusting Redis until a rebuild: the database row
        first (it survives restarts), then the epoch key (every reader sees that at once)."""
        trust = self._state.trust
        assert self._redis is not None and trust is not None
        log.warning("revocation store: Redis untrusted (%s)", reason)
        try:
            trust.store.distrust(reason, now)
        except SQLAlchemyError as exc:
            log.error("revocation store: cannot mark Redis untrusted in the database (%s)",
                      type(exc).__name__)
        try:
            self._redis.delete(EPOCH_KEY)  # allowed even when Redis refuses writes (maxmemory)
        except redis.RedisError:
            pass  # then Redis cannot be read by anyone either, or the row above tells them
        trust.reread()

    # --- checking

    def check(self, *, jti: str | None, sid: str | None, user_id: int | None, iat: int | None,
              token_hash: str | None, now: datetime, kid: str | None = None) -> str | None:
        """None if the token may be used, else ``token_revoked``, ``session_revoked``,
        ``user_revoked`` or ``key_revoked``.

        A check that finds Redis untrusted repairs it, writing the trust row in a
        transaction of its own: on SQLite, never call this while the request's
        session holds the write lock (no flushed, uncommitted writes).
        """
        return self.check_query(RevocationQuery.of(
            jti=jti, sid=sid, user_id=user_id, iat=iat, token_hash=token_hash, kid=kid), now)

    def check_query(self, lookup: RevocationQuery, now: datetime) -> str | None:
        """``check`` for a query built earlier (the hot path keeps one per cached token)."""
        if self._redis is not None:
            found = self._check_redis(lookup, now, repair=True)
            if found is not _DB:
                return found  # type: ignore[return-value]
        return self._check_db(lookup, now)

    def _check_redis(self, lookup: RevocationQuery, now: datetime,
                     repair: bool) -> str | None | object:
        assert self._redis is not None
        trust = self._state.trust
        assert trust is not None
        # Re-reads the row and asks INFO once per interval; otherwise two comparisons.
        expected = trust.expected_epoch(self._redis)
        if expected is None and not trust.plausible():
            return self._untrusted(lookup, now, repair)
        keys = lookup.keys
        mirror = self._state.mirror
        generation = -1
        if mirror is not None:
            known = mirror.lookup(keys)
            if known is not None and expected is not None and known[0] == expected:
                return self._verdict_from(lookup, known)  # steady state: no round trip
            generation = mirror.begin_read()
        try:
            values = self._redis.mget(keys)  # the one round trip of SPEC §6 (a new list)
        except redis.RedisError as exc:
            self._state.mark_down(type(exc).__name__)
            if self._fail_mode == "closed":
                raise StoreUnavailable() from None
            return _DB
        self._state.mark_up()
        # A new connection reports its server before the MGET runs on it, so a
        # restarted or replaced server is already known here.
        if not trust.agrees(_epoch(values[0])) and not trust.agrees_after_reread(
                _epoch(values[0])):
            return self._untrusted(lookup, now, repair)
        if mirror is not None:
            mirror.store(keys, values, generation)
        return self._verdict_from(lookup, values)

    def _untrusted(self, lookup: RevocationQuery, now: datetime, repair: bool) -> object:
        """Redis may have lost revocations: repair it and ask again, else answer from
        the database (``open``) or refuse to answer (``closed``, as when Redis is down)."""
        trust = self._state.trust
        assert trust is not None
        changed = trust.row.trusted
        if repair and trust.repair_due():
            if self.repair(now):
                return self._check_redis(lookup, now, repair=False)
            trust.repair_failed()
        trust.warn_untrusted("the server or its epoch changed" if changed
                             else "not rebuilt since the last failure")
        if self._state.on_fallback is not None:
            self._state.on_fallback("untrusted")
        if self._fail_mode == "closed":
            raise StoreUnavailable()
        return _DB

    @staticmethod
    def _verdict_from(lookup: RevocationQuery, values: list[Any]) -> str | None:
        """Apply the rules to MGET-shaped values: [epoch, one value per lookup pair]."""
        return _verdict(lookup, [(kind, _parse(raw)) for (kind, _), raw
                                 in zip(lookup.pairs, values[1:]) if raw is not None])

    def _check_db(self, lookup: RevocationQuery, now: datetime) -> str | None:
        if not lookup.pairs:
            return None
        statement = _db_lookup(tuple(kind for kind, _ in lookup.pairs))
        params: dict[str, Any] = {f"v{i}": value for i, (_, value) in enumerate(lookup.pairs)}
        params["now"] = now
        rows = self._db.execute(statement, params).all()
        return _verdict(lookup, [(kind, _micros(nb) if nb else 1) for kind, nb in rows])

    # --- repair

    def repair(self, now: datetime) -> bool:
        """Make Redis trusted again: distrust a server the database still trusts but that
        disagrees (restart, restore, failover, lost epoch), then rebuild."""
        trust = self._state.trust
        if self._redis is None or trust is None:
            return False
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
                if trust.agrees(_epoch(seen)):
                    return True  # someone else repaired it meanwhile
                self.distrust("redis_changed", now)
            return self.rebuild(now)
        finally:
            trust.repair_lock.release()

    def rebuild(self, now: datetime) -> bool:
        """Copy every live revocation into Redis and trust a new epoch; one process at a
        time (a Redis lock), and only if no write failed meanwhile (the row's generation)."""
        trust = self._state.trust
        if self._redis is None or trust is None:
            return False
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
        assert self._redis is not None and self._state.trust is not None
        trust = self._state.trust
        before = trust.store.claim(now)  # read before the rows: a later failure moves it
        if before.trusted:
            trust.adopt(before)
            return True  # a rebuild finished while we waited for the lock
        identity = fetch_identity(self._redis)
        if identity.startswith("evicting:"):
            trust.refuse_evicting(identity)
            return False
        self._copy(self.live_rows(now), now)
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

    def live_rows(self, now: datetime) -> list[tuple[str, str, datetime | None, datetime]]:
        """Every revocation still in force, read in a session of its own."""
        with Session(self._db.get_bind()) as session:
            rows = session.execute(select(Revocation.kind, Revocation.value,
                                          Revocation.not_before, Revocation.expires_at)
                                   .where(Revocation.expires_at > now)).all()
        return [(kind, value, not_before, expires_at)
                for kind, value, not_before, expires_at in rows]

    def copy_rows(self, rows: Sequence[tuple[str, str, datetime | None, datetime]],
                  now: datetime) -> None:
        """Write ``rows`` into Redis, keeping whatever later cutoff or longer life is there."""
        self._copy(rows, now)

    def _copy(self, rows: Sequence[tuple[str, str, datetime | None, datetime]],
              now: datetime, batch: int = 1000) -> None:
        assert self._keep_latest is not None
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            keys = [redis_key(kind, value) for kind, value, _, _ in chunk]
            args: list[int] = []
            for _, _, not_before, expires_at in chunk:
                ttl_ms = max(1000, math.ceil((expires_at - now).total_seconds() * 1000))
                args += (_micros(not_before) if not_before else 1, ttl_ms)
            self._keep_latest(keys=keys, args=args)

    def purge(self, now: datetime) -> int:
        """Delete revocations that have outlived everything they revoke; return how many."""
        result = self._db.execute(delete(Revocation).where(Revocation.expires_at <= now))
        self._db.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


def _epoch(raw: Any) -> bytes | None:
    """The epoch key's value as MGET (bytes) or the mirror returns it."""
    return raw.encode() if isinstance(raw, str) else raw


_DB = object()  # sentinel: "ask the database"


@functools.lru_cache(maxsize=64)
def _db_lookup(kinds: tuple[str, ...]) -> TextualSelect:
    """One indexed query for a shape of lookup (which kinds), built once per shape.

    Building the equivalent ORM expression per request cost more than the query.
    The (kind, value) unique index serves each OR branch.
    """
    if not set(kinds) <= set(_REDIS_KIND):  # only our own constants reach the SQL text
        raise ValueError(f"unknown revocation kind in {kinds}")
    branches = " OR ".join(f"(kind = '{kind}' AND value = :v{i})" for i, kind in enumerate(kinds))
    return (
        text(f"SELECT kind, not_before FROM revocations WHERE ({branches}) AND expires_at > :now")
        .bindparams(bindparam("now", type_=UTCDateTime()))
        .columns(kind=String(), not_before=UTCDateTime())
    )


def _parse(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 1



def _verdict(lookup: RevocationQuery, hits: Iterable[tuple[str, int]]) -> str | None:
    """Apply the rules to what the store found (values: cutoff microseconds for users)."""
    for kind, value in hits:
        if kind not in _CUTOFF_KINDS:
            return _REASONS[kind]
        if _before_cutoff(lookup, value):
            return _REASONS[kind]
    return None


def _before_cutoff(lookup: RevocationQuery, cutoff_micros: int) -> bool:
    """Revoke-all exact at the boundary (SPEC §6), with ``iat`` in whole seconds.

    A token with a ``sid`` from the cutoff's own second is decided by its
    session (revoke-all revoked every session that existed), so a login in the
    same second after the revocation passes. A token without ``sid`` cannot be
    told apart within that second and is refused, as is one without ``iat``.
    """
    cutoff_second = cutoff_micros // 1_000_000
    if lookup.iat is None:
        return True
    if lookup.has_sid:
        return lookup.iat < cutoff_second
    return lookup.iat <= cutoff_second
