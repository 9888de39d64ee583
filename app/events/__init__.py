"""The security-event feed (RFC 8417 SETs, RFC 8936 polling, a minimal SSF stream).

``init_app`` makes this app's bell (``bell.EventBell``) and registers a listener
with the revocation service: every revocation adds its events inside its own
transaction, and once that transaction commits the bell wakes the waiting
polls (a session hook, so that no receiver is woken to read rows that are not
there yet). The routes are in ``routes``; the rules in ``app.core.security_events``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from .. import state
from ..core import security_events
from ..extensions import db
from ..metrics import Metrics
from .bell import EventBell

__all__ = ["bell", "init_app", "purge_security_events"]

_EXT = "tessera.events.bell"
# Where a session keeps what its transaction emitted until it commits or rolls back.
_PENDING = "tessera.events.pending"


def init_app(app: Flask) -> None:
    """This app's bell, and the revocation listener that emits the events."""
    if _EXT in app.extensions:
        raise RuntimeError("the security-event feed is already set up on this app")
    ring = EventBell(app.extensions["tessera.redis"])
    app.extensions[_EXT] = ring
    service = app.extensions["tessera.revocation"]
    service.listeners.append(functools.partial(_emit, ring, app.extensions["tessera.metrics"]))
    # Session-class hooks (every app's sessions): registered once per process; each
    # session carries its own app's bell in ``info``.
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_soft_rollback)


def bell() -> EventBell:
    """This app's bell."""
    return current_app.extensions[_EXT]  # type: ignore[no-any-return]


def _emit(ring: EventBell, counters: Metrics, session: Any,
          entries: Sequence[tuple[str, str, datetime | None]], expires_at: datetime,
          now: datetime, reason: str) -> None:
    """The revocation listener: events into the revocation's transaction."""
    rows = security_events.record(session, entries, expires_at, now, reason)
    session.info.setdefault(_PENDING, []).append(
        (ring, counters, [row.event_type for row in rows]))


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: the events are not visible to others yet
    for ring, counters, types in session.info.pop(_PENDING, ()):
        for event_type in types:
            counters.events_emitted.labels(event_type).inc()
        ring.ring()


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the whole transaction, its events with it
        session.info.pop(_PENDING, None)


def purge_security_events() -> int:
    """Delete the events whose revocation has expired (``flask revocations purge``)."""
    removed = security_events.purge(db.session, state.now())
    db.session.commit()
    return removed
