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
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, scoped_session

from ..models import SecurityEvent, SecurityEventAck

__all__ = [
    "ACCOUNT_DISABLED",
    "CREDENTIAL_CHANGE",
    "EVENT_TYPES",
    "KEY_REVOKED",
    "LEGACY_TOKENS_REVOKED",
    "SESSION_REVOKED",
    "TOKEN_REVOKED",
    "acknowledge",
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


def pending(session: Session | scoped_session[Any], client_id: str, now: datetime,
            limit: int) -> list[SecurityEvent]:
    """The events still in force that ``client_id`` has not acknowledged, oldest first."""
    acked = exists().where(SecurityEventAck.client_id == client_id,
                           SecurityEventAck.event_id == SecurityEvent.id)
    return list(session.scalars(
        select(SecurityEvent).where(SecurityEvent.expires_at > now, ~acked)
        .order_by(SecurityEvent.id).limit(limit)))


def acknowledge(session: Session | scoped_session[Any], client_id: str,
                uids: Iterable[str], now: datetime, error: str | None = None) -> int:
    """Mark the events named by ``uids`` received by ``client_id`` (unknown ones are
    ignored, a second ack changes nothing); returns how many were newly acknowledged.
    The caller commits."""
    wanted = sorted(set(uids))
    if not wanted:
        return 0
    ids = list(session.scalars(select(SecurityEvent.id).where(SecurityEvent.uid.in_(wanted))))
    if not ids:
        return 0
    insert = (postgresql_insert if session.get_bind().dialect.name == "postgresql"
              else sqlite_insert)
    # One statement settles two concurrent acks of one event (the primary key).
    result = session.execute(
        insert(SecurityEventAck)
        .values([{"client_id": client_id, "event_id": i, "acked_at": now,
                  "error": error[:64] if error else None} for i in ids])
        .on_conflict_do_nothing(index_elements=["client_id", "event_id"])
        .returning(SecurityEventAck.event_id))
    return len(result.all())


def purge(session: Session | scoped_session[Any], now: datetime) -> int:
    """Delete events (and their acks) whose revocation has expired; returns how many.
    The caller commits."""
    gone = select(SecurityEvent.id).where(SecurityEvent.expires_at <= now)
    session.execute(delete(SecurityEventAck).where(SecurityEventAck.event_id.in_(gone)))
    result = session.execute(delete(SecurityEvent).where(SecurityEvent.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]
