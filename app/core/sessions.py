"""Login sessions and rotating refresh tokens (SPEC §5).

A refresh token is 256 random bits, stored only as its SHA-256, bound to one
session. Every refresh consumes the presented token with one conditional
UPDATE (the database decides which of two concurrent refreshes wins) and
issues the next one. The winner's new token is also stored sealed under a key
derived from the consumed token, so that within ``REFRESH_REUSE_GRACE`` a
second tab presenting that same consumed token can be handed the session's
current token — and nobody else can, since only the hash of the consumed
token is stored. Any other reuse of a consumed token revokes the session.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import AuthSession, RefreshToken, User
from .compiled_sql import CompiledStatement
from .crypto import SealError, seal, sha256_hex, unseal
from .login_statements import INSERT_SESSION, OVERTAKEN_CHECK, session_values
from .refresh_statements import (
    ADD_SUCCESSOR,
    CONSUME,
    FIND,
    TOKEN_BY_ID,
    TOUCH,
    SessionRow,
    TokenRow,
    UserRow,
    found_rows,
    token_row,
)

__all__ = [
    "LoginOvertaken",
    "PresentedToken",
    "RefreshFailed",
    "RefreshResult",
    "ReuseDetected",
    "SessionLimits",
    "confirm_new_session",
    "find_refresh_token",
    "is_live",
    "live_sessions",
    "new_session",
    "rotate_found",
    "rotate_refresh_token",
    "session_of_refresh_token",
    "write_session",
]

_SUCCESSOR = "refresh-successor"
# A refresh's four statements, run on the DBAPI cursor (see app.core.compiled_sql).
_FIND, _CONSUME, _ADD_SUCCESSOR, _TOUCH = (
    CompiledStatement(FIND), CompiledStatement(CONSUME), CompiledStatement(ADD_SUCCESSOR),
    CompiledStatement(TOUCH))


class RefreshFailed(Exception):
    """The refresh token cannot be used; ``reason`` is for logs and audit."""

    def __init__(self, reason: str, session_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.session_id = session_id


class ReuseDetected(RefreshFailed):
    """A consumed token came back outside the grace window: the session must die."""


@dataclass(frozen=True)
class SessionLimits:
    max_age: timedelta
    idle_timeout: timedelta
    reuse_grace: timedelta


@dataclass(frozen=True)
class RefreshResult:
    session: SessionRow
    user: UserRow
    refresh_token: str  # the session's current token (new, or the winner's during grace)
    rotated: bool  # False when the grace path handed back the current token


def _successor_key(consumed_token: str) -> bytes:
    """A key only a holder of the consumed token can derive."""
    hkdf = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"tessera refresh successor")
    return hkdf.derive(consumed_token.encode())


def new_session(
    user: User,
    *,
    now: datetime,
    limits: SessionLimits,
    client_id: str = "web",
    user_agent: str = "",
    ip: str = "",
    acr: str = "aal1",
    amr: list[str] | None = None,
    auth_time: datetime | None = None,
) -> tuple[AuthSession, str]:
    """A session and its first refresh token, not yet written: ``write_session`` writes
    them (a login's ``confirm_new_session`` does, in the transaction that commits its
    audit rows)."""
    sess = AuthSession(
        id=secrets.token_urlsafe(16),
        user_id=user.id,
        client_id=client_id,
        created_at=now,
        last_used_at=now,
        expires_at=now + limits.max_age,
        user_agent=user_agent[:512],
        ip=ip[:64],
        acr=acr,
        amr=amr or ["pwd"],
        auth_time=auth_time or now,
    )
    return sess, secrets.token_urlsafe(32)  # 256 bits


def write_session(db: Session, sess: AuthSession, refresh_token: str) -> None:
    """Write ``new_session``'s session and its first refresh token: two Core INSERTs on
    ``db``'s connection, in its transaction (no unit of work; the caller commits)."""
    conn = db.connection()
    conn.execute(INSERT_SESSION, session_values(sess))
    conn.execute(ADD_SUCCESSOR, {"sid": sess.id, "now": sess.created_at,
                                 "token_hash": sha256_hex(refresh_token)})


class LoginOvertaken(Exception):
    """The user was disabled, had their password changed or all their tokens revoked
    while this login was in flight: it must not get a session."""


def confirm_new_session(db: Session, sess: AuthSession, refresh_token: str, *,
                        checked_at: datetime, password_hash: str | None = None) -> None:
    """The last step of a login, after the credential check (SPEC §6: a user revocation
    refuses every session from before it, a login in flight included).

    Writes the new session and its first refresh token (``write_session``), then
    re-reads the user under a shared row lock (PostgreSQL ``FOR SHARE``; on SQLite
    the INSERT already holds the database's write lock). ``revocations.revoke_user``
    locks the same row before it lists the sessions to end, so either it sees this
    session and ends it, or this sees its effects here: the account disabled, the
    password changed after ``checked_at`` (or its hash no longer ``password_hash``),
    or a revoke-all cutoff after ``checked_at`` (to the microsecond; the same instant
    counts as after, SPEC §6). Then raise LoginOvertaken; the caller rolls back.
    Argon2 has run before: nothing slow happens under the lock. One query reads the
    user and the cutoff.
    """
    db.flush()  # whatever the flow changed through the ORM goes first
    write_session(db, sess, refresh_token)
    user_id = sess.user_id
    row = db.connection().execute(OVERTAKEN_CHECK, {"uid": user_id, "uid_text": str(user_id)}).one()
    if (row.disabled
            or (password_hash is not None and row.password_hash != password_hash)
            or row.password_changed_at > checked_at
            or (row.not_before is not None and row.not_before > checked_at)):
        raise LoginOvertaken()


@dataclass(frozen=True)
class PresentedToken:
    """A presented refresh token's row with its session and user (one query, plain rows)."""

    row: TokenRow
    session: SessionRow
    user: UserRow


def find_refresh_token(db: Session, presented: str, now: datetime,
                       limits: SessionLimits) -> PresentedToken:
    """The token's row, session and user in one query, checked usable; raise RefreshFailed.

    Reads only: the caller may do work that must not hold the write lock (signing the
    access token, whose key check may repair Redis) before ``rotate_found`` writes."""
    # On the session's connection, in its transaction: neither Session.execute's ORM
    # layer nor Connection.execute's machinery adds anything to it but cost.
    found = _FIND.first(db.connection(), {"token_hash": sha256_hex(presented)})
    if found is None:
        raise RefreshFailed("unknown_token")
    row, sess, user = found_rows(found)
    if sess is None or sess.revoked_at is not None:
        raise RefreshFailed("session_revoked", row.session_id)
    if now >= sess.expires_at:
        raise RefreshFailed("session_expired", sess.id)
    if now - sess.last_used_at >= limits.idle_timeout:
        raise RefreshFailed("session_idle", sess.id)
    if user is None or user.disabled:
        raise RefreshFailed("user_disabled", sess.id)
    return PresentedToken(row, sess, user)


def rotate_found(db: Session, found: PresentedToken, presented: str, now: datetime,
                 limits: SessionLimits) -> RefreshResult:
    """Consume the token and add its successor, uncommitted (the caller commits once, with
    its audit rows); or, for a token already consumed, the grace path or ReuseDetected."""
    row, sess, user = found.row, found.session, found.user
    if row.consumed_at is None:
        result = _consume(db, row, sess, user, presented, now)
        if result is not None:
            return result
        db.rollback()  # lost the race: read the winner's work
        row = token_row(db.connection().execute(TOKEN_BY_ID, {"rid": row.id}).one())
    return _grace_or_reuse(db, row, sess, user, presented, now, limits)


def rotate_refresh_token(
    db: Session, presented: str, now: datetime, limits: SessionLimits
) -> RefreshResult:
    """Consume ``presented`` and return the session's next token, committed (see module
    docstring); ``find_refresh_token`` and ``rotate_found`` in one call."""
    result = rotate_found(db, find_refresh_token(db, presented, now, limits), presented, now,
                          limits)
    db.commit()
    return result


def _consume(
    db: Session, row: TokenRow, sess: SessionRow, user: UserRow, presented: str, now: datetime
) -> RefreshResult | None:
    token = secrets.token_urlsafe(32)  # 256 bits, as new_session's
    sealed = seal(_successor_key(presented), token.encode(), _SUCCESSOR)
    # One statement consumes the token (if nobody did: the database decides a race) and
    # clears the sealed successor of the session's older tokens, which the grace path
    # no longer serves (it serves only the immediately previous token).
    conn = db.connection()
    updated = _CONSUME.run(conn, {"sid": sess.id, "rid": row.id, "now": now,
                                  "sealed": sealed})
    if (row.id,) not in updated:
        return None
    params = {"sid": sess.id, "now": now, "token_hash": sha256_hex(token)}
    _ADD_SUCCESSOR.run(conn, params)
    _TOUCH.run(conn, params)
    return RefreshResult(replace(sess, last_used_at=now), user, token, rotated=True)


def _grace_or_reuse(
    db: Session, row: TokenRow, sess: SessionRow, user: UserRow, presented: str, now: datetime,
    limits: SessionLimits,
) -> RefreshResult:
    assert row.consumed_at is not None
    if now - row.consumed_at <= limits.reuse_grace and row.successor_sealed is not None:
        try:
            current = unseal(_successor_key(presented), row.successor_sealed, _SUCCESSOR).decode()
        except SealError:
            current = None
        if current is not None and _is_unconsumed(db, current):
            return RefreshResult(sess, user, current, rotated=False)
    raise ReuseDetected("refresh_token_reused", sess.id)


def session_of_refresh_token(db: Session, presented: str) -> AuthSession | None:
    """The session whose current (unconsumed) refresh token is ``presented``, if any."""
    row = db.scalars(select(RefreshToken).where(
        RefreshToken.token_hash == sha256_hex(presented))).first()
    if row is None or row.consumed_at is not None:
        return None
    return db.get(AuthSession, row.session_id)


def _is_unconsumed(db: Session, token: str) -> bool:
    row = db.scalars(select(RefreshToken).where(
        RefreshToken.token_hash == sha256_hex(token))).first()
    return row is not None and row.consumed_at is None


def is_live(sess: AuthSession, now: datetime, limits: SessionLimits) -> bool:
    """Whether ``sess`` is neither revoked nor past its absolute or idle expiry (SPEC §5)."""
    return (sess.revoked_at is None and now < sess.expires_at
            and now - sess.last_used_at < limits.idle_timeout)


def live_sessions(db: Session, user_id: int, now: datetime,
                  limits: SessionLimits) -> list[AuthSession]:
    """The user's sessions that are neither revoked nor expired, most recently used first."""
    return live_sessions_of(db, [user_id], now, limits)


def live_sessions_of(
    db: Session, user_ids: list[int], now: datetime, limits: SessionLimits
) -> list[AuthSession]:
    """Live sessions of several users in one query (the admin page), most recent first."""
    stmt = (
        select(AuthSession)
        .where(AuthSession.user_id.in_(user_ids), AuthSession.revoked_at.is_(None),
               AuthSession.expires_at > now, AuthSession.last_used_at > now - limits.idle_timeout)
        .order_by(AuthSession.last_used_at.desc())
    )
    return list(db.scalars(stmt))
