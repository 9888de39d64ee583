"""Revocation (SPEC §6): the database is the truth; Redis or a local mirror the hot path.

Every revocation is written to the database first, in one transaction. With
Redis configured, it is then copied there (``revocation_redis``), and the
per-request check asks Redis (or its per-process mirror) while the
database's trust row says Redis may be believed; otherwise the database
answers. Without Redis, a per-process copy of the table
(``revocation_local``) answers, kept exact by ``PRAGMA data_version`` on
SQLite or ``LISTEN``/``NOTIFY`` on PostgreSQL; when it cannot vouch for
itself, the database answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, scoped_session

from ..models import AuthSession, User
from . import revocation_writes as writes
from .revocation_listen import watch_for
from .revocation_local import UNKNOWN, LocalMirror
from .revocation_mirror import RevocationMirror
from .revocation_redis import ASK_DATABASE, Entry, RedisRevocations, Row, WaitPolicy
from .revocation_rules import (
    EPOCH_KEY,
    PREFIX,
    RevocationQuery,
    StoreUnavailable,
    db_lookup,
    micros,
    redis_key,
    verdict,
)
from .revocation_trust import TrustKeeper

__all__ = [
    "EPOCH_KEY",
    "PREFIX",
    "RevocationListener",
    "RevocationQuery",
    "RevocationService",
    "RevocationState",
    "StoreUnavailable",
    "WaitPolicy",
    "redis_key",
]

log = logging.getLogger(__name__)

# Told of every revocation inside its transaction, before the commit (the security-event
# feed, app.events): (session, [(kind, value, cutoff)], expires_at, now, reason).
RevocationListener = Callable[
    [Any, Sequence[tuple[str, str, "datetime | None"]], datetime, datetime, str], None]


@dataclass
class RevocationState:
    """What one process keeps between requests: whether Redis is down (log once), its
    view of the trust row (``trust``), the Redis mirror, and the database mirror used
    without Redis (``local``, made at the first check; ``local_mirror=False``: none)."""

    redis_down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    fallbacks: int = 0
    on_fallback: Callable[[str], None] | None = None
    # Local copy of the Redis keys, kept exact by invalidations (SPEC §10); None: off.
    mirror: RevocationMirror | None = None
    # The database's word on whether Redis may be believed (None without Redis).
    trust: TrustKeeper | None = None
    local_mirror: bool = True
    local: LocalMirror | None = None

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
        self._state = state
        self.listeners: list[RevocationListener] = []  # see RevocationListener
        self._redis = (RedisRevocations(client, state, session.get_bind, fail_mode,
                                        wait or WaitPolicy())
                       if client is not None else None)

    @property
    def state(self) -> RevocationState:
        """The per-process state (outage flag, trust view, mirrors) this service keeps."""
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
        entries: list[Entry] = [("sid", sid, None) for sid in sids] + [("user", str(user_id), now)]
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
        inserted = writes.insert_if_absent(self._db, kind, value, expires_at, now, reason)
        if inserted:
            writes.announce(self._db, [writes.mirror_row(kind, value, None, expires_at)])
            self._tell([(kind, value, None)], expires_at, now, reason)
        return inserted

    def publish(self, kind: str, value: str, expires_at: datetime, now: datetime) -> None:
        """Copy a committed revocation (from ``claim``) to the mirrors and Redis."""
        self._published([(kind, value, None)], expires_at, now)

    def _write(self, entries: list[Entry], expires_at: datetime, now: datetime,
               reason: str) -> None:
        """Database first, in one transaction (one commit); then the mirrors and Redis.
        A Redis write that fails makes Redis untrusted everywhere before this returns."""
        for kind, value, not_before in entries:
            writes.merge(self._db, kind, value, not_before, expires_at, now, reason)
        writes.announce(self._db, [writes.mirror_row(k, v, nb, expires_at)
                                   for k, v, nb in entries])
        self._tell(entries, expires_at, now, reason)
        self._db.commit()
        self._published(entries, expires_at, now)

    def _tell(self, entries: Sequence[Entry], expires_at: datetime, now: datetime,
              reason: str) -> None:
        """The listeners, in the revocation's transaction: it commits with what they add."""
        for listener in self.listeners:
            listener(self._db, entries, expires_at, now, reason)

    def _published(self, entries: list[Entry], expires_at: datetime, now: datetime) -> None:
        local = self._state.local
        if local is not None:  # this process's next check must not wait for the watch
            local.note([writes.mirror_row(k, v, nb, expires_at) for k, v, nb in entries])
        if self._redis is not None:
            self._redis.publish(entries, expires_at, now)

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
            found = self._redis.check(lookup, now)
            if found is not ASK_DATABASE:
                return found  # type: ignore[return-value]
        else:
            local = self._local()
            if local is not None:
                found = local.answer(lookup, now)
                if found is not UNKNOWN:
                    return found  # type: ignore[return-value]
        return self._check_db(lookup, now)

    def _local(self) -> LocalMirror | None:
        """The database mirror, made at the first check (it needs the app's engine)."""
        state = self._state
        if state.local is not None or not state.local_mirror:
            return state.local
        with state.lock:
            if state.local is None and state.local_mirror:
                engine = self._db.get_bind()
                watch = watch_for(engine)
                if watch is None:
                    state.local_mirror = False  # an in-memory or unknown database
                else:
                    state.local = local = LocalMirror(watch)
                    # Disposing of the engine (tests, a fork) closes the mirror's connection.
                    event.listen(engine, "engine_disposed", lambda *_: local.close())
        return state.local

    def _check_db(self, lookup: RevocationQuery, now: datetime) -> str | None:
        if not lookup.pairs:
            return None
        statement = db_lookup(tuple(kind for kind, _ in lookup.pairs))
        params: dict[str, Any] = {f"v{i}": value for i, (_, value) in enumerate(lookup.pairs)}
        params["now"] = now
        rows = self._db.execute(statement, params).all()
        return verdict(lookup, [(kind, micros(nb) if nb else 1) for kind, nb in rows])

    # --- maintenance

    def live_rows(self, now: datetime) -> list[Row]:
        """Every revocation still in force, read in a session of its own."""
        with Session(self._db.get_bind()) as session:
            return writes.live_rows(session, now)

    def copy_rows(self, rows: list[Row], now: datetime) -> None:
        """Write ``rows`` into Redis, keeping whatever later cutoff or longer life is there."""
        assert self._redis is not None
        self._redis.copy(rows, now)

    def purge(self, now: datetime) -> int:
        """Delete revocations that have outlived everything they revoke; return how many."""
        return writes.purge(self._db, now)

