"""Revocation (SPEC §6): the database is the truth, Redis the hot path.

Writes go to the database first (committed), then to Redis with a TTL equal
to the remaining life of what they revoke. The per-request check reads the
token's ``jti``, its ``sid``, its user cutoff (and a legacy token's hash)
together with the epoch marker in one ``MGET``. A missing epoch marker means
Redis restarted empty or was flushed: that request is answered from the
database and Redis is rebuilt from it (one process at a time). When Redis
cannot be reached the check falls back to the database (``fail_mode="open"``)
or refuses to answer (``"closed"``).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import String, TextualSelect, bindparam, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session

from app.core.revocation_mirror import RevocationMirror
from app.models import AuthSession, Revocation
from app.models.base import UTCDateTime

__all__ = [
    "EPOCH_KEY",
    "RevocationQuery",
    "RevocationService",
    "RevocationState",
    "StoreUnavailable",
    "redis_key",
]

log = logging.getLogger(__name__)

PREFIX = "tessera:rev:"
EPOCH_KEY = PREFIX + "epoch"
REBUILD_LOCK = PREFIX + "rebuild"
_REDIS_KIND = {"jti": "jti", "sid": "sid", "tokenhash": "th", "user": "user", "kid": "kid"}
_REASONS = {"jti": "token_revoked", "tokenhash": "token_revoked", "sid": "session_revoked",
            "user": "user_revoked", "kid": "key_revoked"}


class StoreUnavailable(Exception):
    """Revocation state cannot be read and the fail mode is ``closed``."""


def redis_key(kind: str, value: str) -> str:
    """The Redis key of one revocation."""
    return f"{PREFIX}{_REDIS_KIND[kind]}:{value}"


def _micros(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


@dataclass
class RevocationState:
    """What one process remembers between requests: whether Redis is down (log once)."""

    redis_down: bool = False
    # A revocation reached the database but not Redis: Redis must be rebuilt
    # before anyone trusts it again (see RevocationService._check_redis).
    dirty: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    fallbacks: int = 0
    on_fallback: Callable[[str], None] | None = None
    # Local copy of the Redis keys, kept exact by invalidations (SPEC §10); None: off.
    mirror: RevocationMirror | None = None

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
           token_hash: str | None, kid: str | None = None) -> RevocationQuery:
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
        keys = (EPOCH_KEY, *(redis_key(kind, value) for kind, value in pairs))
        return cls(tuple(pairs), iat, bool(sid), keys)


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
    ) -> None:
        self._db = session
        self._redis = client
        self._state = state
        self._fail_mode = fail_mode

    @property
    def state(self) -> RevocationState:
        """The per-process state (outage flag, mirror) this service keeps."""
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
        """Every session of the user and every token issued before ``now``; returns the sids."""
        sids = list(self._db.scalars(select(AuthSession.id).where(
            AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))))
        if sids:
            self._db.execute(update(AuthSession).where(AuthSession.id.in_(sids))
                             .values(revoked_at=now).execution_options(synchronize_session=False))
        entries: list[tuple[str, str, datetime | None]] = (
            [("sid", sid, None) for sid in sids] + [("user", str(user_id), now)])
        self._write(entries, expires_at, now, reason)
        return sids

    def _write(self, entries: list[tuple[str, str, datetime | None]], expires_at: datetime,
               now: datetime, reason: str) -> None:
        """Database first, in one transaction; then Redis, best effort."""
        for kind, value, not_before in entries:
            self._upsert(kind, value, not_before, expires_at, now, reason)
        self._db.commit()
        ttl_ms = max(1000, math.ceil((expires_at - now).total_seconds() * 1000))
        items = [(redis_key(k, v), _micros(nb) if nb else 1) for k, v, nb in entries]
        self._redis_set(items, ttl_ms)

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

    def _redis_set(self, items: list[tuple[str, int]], ttl_ms: int) -> None:
        if self._redis is None:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, value in items:
                pipe.set(key, value, px=ttl_ms)
            pipe.execute()
        except redis.RedisError as exc:
            # The database already holds it; Redis is repaired when it answers again.
            self._state.dirty = True
            self._state.mark_down(type(exc).__name__)

    # --- checking

    def check(self, *, jti: str | None, sid: str | None, user_id: int | None, iat: int | None,
              token_hash: str | None, now: datetime, kid: str | None = None) -> str | None:
        """None if the token may be used, else ``token_revoked``, ``session_revoked``,
        ``user_revoked`` or ``key_revoked``."""
        return self.check_query(RevocationQuery.of(
            jti=jti, sid=sid, user_id=user_id, iat=iat, token_hash=token_hash, kid=kid), now)

    def check_query(self, lookup: RevocationQuery, now: datetime) -> str | None:
        """``check`` for a query built earlier (the hot path keeps one per cached token)."""
        if self._redis is not None:
            found = self._check_redis(lookup, now)
            if found is not _DB:
                return found  # type: ignore[return-value]
        return self._check_db(lookup, now)

    def _check_redis(self, lookup: RevocationQuery, now: datetime) -> str | None | object:
        assert self._redis is not None
        keys = lookup.keys
        mirror = self._state.mirror if not self._state.dirty else None
        generation = -1
        if mirror is not None:
            known = mirror.lookup(keys)
            if known is not None and known[0] is not None:
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
        if self._state.dirty:
            # Redis missed a write of ours: drop the epoch so that every process
            # stops trusting it until the rebuild below has copied the database.
            try:
                self._redis.delete(EPOCH_KEY)
            except redis.RedisError:
                return _DB
            self._state.dirty = False
            values[0] = None
        if values[0] is None:
            self.rebuild(now)
            return _DB
        if mirror is not None:
            mirror.store(keys, values, generation)
        return self._verdict_from(lookup, values)

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

    def rebuild(self, now: datetime) -> bool:
        """Copy every live revocation into Redis and set a new epoch; one process at a time."""
        if self._redis is None:
            return False
        token = uuid.uuid4().hex
        try:
            if not self._redis.set(REBUILD_LOCK, token, nx=True, px=30_000):
                return False  # another process is rebuilding; we answer from the database
            self._copy_all(now)
            self._redis.set(EPOCH_KEY, token)
            self._redis.delete(REBUILD_LOCK)
        except redis.RedisError as exc:
            self._state.mark_down(type(exc).__name__)
            return False
        log.info("revocation store: Redis rebuilt from the database (epoch %s)", token[:8])
        return True

    def _copy_all(self, now: datetime, batch: int = 1000) -> None:
        assert self._redis is not None
        rows = self._db.execute(select(Revocation.kind, Revocation.value, Revocation.not_before,
                                       Revocation.expires_at)
                                .where(Revocation.expires_at > now)).all()
        for start in range(0, len(rows), batch):
            pipe = self._redis.pipeline(transaction=False)
            for kind, value, not_before, expires_at in rows[start:start + batch]:
                ttl_ms = max(1000, math.ceil((expires_at - now).total_seconds() * 1000))
                pipe.set(redis_key(kind, value), _micros(not_before) if not_before else 1,
                         px=ttl_ms)
            pipe.execute()

    def purge(self, now: datetime) -> int:
        """Delete revocations that have outlived everything they revoke; return how many."""
        result = self._db.execute(delete(Revocation).where(Revocation.expires_at <= now))
        self._db.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


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
        if kind != "user":
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
