"""Security events: each revocation as an RFC 8417 Security Event Token for receivers.

Every denylist entry a revocation writes (``app.core.revocation``) becomes one
event row in the same transaction, so a receiver never learns of a revocation
that was rolled back nor misses one that was committed. An event names the entry
exactly as Tessera keys it (a token's ``jti`` or a legacy token's hash, a
session, a user's cutoff, a key), announced with the OpenID Shared Signals event
type that means the same thing where one exists:

==============  =====================================================
kind            event type
==============  =====================================================
jti, tokenhash  ``urn:tessera:secevent:token-revoked``
sid             CAEP ``session-revoked`` (subject: the session)
user            RISC ``account-disabled`` (user disabled), CAEP
                ``credential-change`` (temporary password, MFA reset),
                else CAEP ``session-revoked`` (subject: the user)
legacyuser      ``urn:tessera:secevent:legacy-tokens-revoked``
kid             ``urn:tessera:secevent:key-revoked``
==============  =====================================================

Receivers poll (RFC 8936): an event is pending for a client until it acknowledges
it, and is kept until the revocation itself expires (``purge``), so a new or
restarted receiver catches up on everything still in force.

A poll reads only above the client's cursor (``advance``): the highest id below
which every event is acknowledged or expired. The cursor never passes an event
younger than ``SETTLE``: on PostgreSQL ids are taken at insert, not at commit, so
a revocation still committing may hold a lower id than one already acknowledged.
Without the cursor a waiting poll re-read every live event it had acknowledged
(240-340 ms a query with 100,000 live acknowledged events on SQLite; 1 ms above
the cursor, which one 280 ms advance set).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, scoped_session

from ..models import SecurityEvent, SecurityEventAck, SecurityEventCursor

__all__ = [
    "ACCOUNT_DISABLED",
    "CREDENTIAL_CHANGE",
    "EVENT_TYPES",
    "KEY_REVOKED",
    "LEGACY_TOKENS_REVOKED",
    "SESSION_REVOKED",
    "TOKEN_REVOKED",
    "SETTLE",
    "acknowledge",
    "advance",
    "cursor",
    "event_type_for",
    "pending",
    "purge",
    "record",
]

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
CREDENTIAL_CHANGE = CAEP + "credential-change"
ACCOUNT_DISABLED = RISC + "account-disabled"
# Tessera's own types, where no Shared Signals type means the same thing.
TOKEN_REVOKED = "urn:tessera:secevent:token-revoked"
LEGACY_TOKENS_REVOKED = "urn:tessera:secevent:legacy-tokens-revoked"
KEY_REVOKED = "urn:tessera:secevent:key-revoked"
EVENT_TYPES = (SESSION_REVOKED, CREDENTIAL_CHANGE, ACCOUNT_DISABLED, TOKEN_REVOKED,
               LEGACY_TOKENS_REVOKED, KEY_REVOKED)

_BY_KIND = {"jti": TOKEN_REVOKED, "tokenhash": TOKEN_REVOKED, "sid": SESSION_REVOKED,
            "legacyuser": LEGACY_TOKENS_REVOKED, "kid": KEY_REVOKED}
# A user's cutoff is announced by why it was written (app.admin.actions, app.auth.flows).
_USER_BY_REASON = {"user_disabled": ACCOUNT_DISABLED, "temporary_password": CREDENTIAL_CHANGE,
                   "mfa_reset": CREDENTIAL_CHANGE}

# How old an event must be before a cursor may pass it (longer than any revocation's
# transaction stays open between its insert and its commit).
SETTLE = timedelta(seconds=60)

Entry = tuple[str, str, "datetime | None"]  # (kind, value, cutoff) as the revocation writes it


def event_type_for(kind: str, reason: str) -> str:
    """The event type announcing a denylist entry of ``kind`` written for ``reason``."""
    if kind == "user":
        return _USER_BY_REASON.get(reason, SESSION_REVOKED)
    return _BY_KIND[kind]


def record(session: Session | scoped_session[Any], entries: Sequence[Entry],
           expires_at: datetime, now: datetime, reason: str) -> list[SecurityEvent]:
    """Add one event per entry to the caller's transaction (the revocation's own); the
    caller commits. Returns the new rows."""
    rows = [SecurityEvent(uid=secrets.token_hex(16), event_type=event_type_for(kind, reason),
                          kind=kind, value=value, not_before=not_before,
                          reason=reason[:64], created_at=now, expires_at=expires_at)
            for kind, value, not_before in entries]
    session.add_all(rows)
    return rows


def cursor(session: Session | scoped_session[Any], client_id: str) -> int:
    """The client's cursor (``advance``): every event at or below it is acknowledged or
    expired, for good, so a value read earlier stays a true floor for ``pending``."""
    found = session.scalar(select(SecurityEventCursor.acked_through)
                           .where(SecurityEventCursor.client_id == client_id))
    return int(found or 0)


def _unacked(client_id: str) -> Any:
    return ~exists().where(SecurityEventAck.client_id == client_id,
                           SecurityEventAck.event_id == SecurityEvent.id)


def pending(session: Session | scoped_session[Any], client_id: str, now: datetime,
            limit: int, floor: int | None = None) -> list[SecurityEvent]:
    """The events still in force that ``client_id`` has not acknowledged, oldest first.
    ``floor``: the client's ``cursor`` as read before (read here when not given)."""
    if floor is None:
        floor = cursor(session, client_id)
    return list(session.scalars(
        select(SecurityEvent)
        .where(SecurityEvent.id > floor, SecurityEvent.expires_at > now, _unacked(client_id))
        .order_by(SecurityEvent.id).limit(limit)))


def advance(session: Session | scoped_session[Any], client_id: str, now: datetime) -> int:
    """Move the client's cursor up to its oldest pending event (never past one younger
    than SETTLE); returns the cursor. The caller commits."""
    floor = cursor(session, client_id)
    first = session.scalar(
        select(SecurityEvent.id)
        .where(SecurityEvent.id > floor, SecurityEvent.expires_at > now, _unacked(client_id))
        .order_by(SecurityEvent.id).limit(1))
    settled = session.scalar(select(func.max(SecurityEvent.id)).where(
        SecurityEvent.id > floor, SecurityEvent.created_at < now - SETTLE))
    if settled is None:
        return floor
    target = settled if first is None else min(settled, first - 1)
    if target <= floor:
        return floor
    insert = (postgresql_insert if session.get_bind().dialect.name == "postgresql"
              else sqlite_insert)
    # A concurrent poll of the same client may write a lower value: each is true, and
    # the next advance moves it up again.
    session.execute(insert(SecurityEventCursor)
                    .values(client_id=client_id, acked_through=target)
                    .on_conflict_do_update(index_elements=["client_id"],
                                           set_={"acked_through": target}))
    return target


# Uids per statement pair in ``acknowledge``: with 4 bound values an acknowledgement row,
# under SQLite's default bound-value limit (32,766) and PostgreSQL's (65,535).
_ACK_CHUNK = 2000


def acknowledge(session: Session | scoped_session[Any], client_id: str,
                uids: Iterable[str], now: datetime, error: str | None = None,
                errors: Mapping[str, str] | None = None) -> int:
    """Mark the events named by ``uids`` received by ``client_id`` (unknown ones are
    ignored, a second ack changes nothing); returns how many were newly acknowledged.
    Each new acknowledgement keeps its RFC 8936 ``setErrs`` code: ``errors[uid]`` where
    given, else ``error``. Two statements per 2,000 uids, whatever their codes. The
    caller commits."""
    wanted = sorted(set(uids))
    errors = errors or {}
    insert = (postgresql_insert if session.get_bind().dialect.name == "postgresql"
              else sqlite_insert)
    marked = 0
    for start in range(0, len(wanted), _ACK_CHUNK):
        found = session.execute(select(SecurityEvent.id, SecurityEvent.uid).where(
            SecurityEvent.uid.in_(wanted[start:start + _ACK_CHUNK]))).all()
        if not found:
            continue
        rows = []
        for event_id, uid in found:
            code = errors.get(uid, error)
            rows.append({"client_id": client_id, "event_id": event_id, "acked_at": now,
                         "error": code[:64] if code else None})
        # One statement settles two concurrent acks of one event (the primary key).
        result = session.execute(
            insert(SecurityEventAck).values(rows)
            .on_conflict_do_nothing(index_elements=["client_id", "event_id"])
            .returning(SecurityEventAck.event_id))
        marked += len(result.all())
    return marked


def purge(session: Session | scoped_session[Any], now: datetime) -> int:
    """Delete events (and their acks) whose revocation has expired; returns how many.
    The caller commits."""
    gone = select(SecurityEvent.id).where(SecurityEvent.expires_at <= now)
    session.execute(delete(SecurityEventAck).where(SecurityEventAck.event_id.in_(gone)))
    result = session.execute(delete(SecurityEvent).where(SecurityEvent.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]
