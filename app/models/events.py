"""Security events (RFC 8417 SETs) waiting for registered receivers, and their acks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime


class SecurityEvent(db.Model):  # type: ignore[name-defined,misc]
    """One revocation as a receiver learns it: the denylist entry (kind, value, cutoff)
    and the event type it is announced as. Kept until ``expires_at``, the revocation's
    own life: after it, nothing the event revokes can still be presented."""

    __tablename__ = "security_events"

    # The delivery order: receivers get events by ascending id.
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    event_type: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(128))
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SecurityEventAck(db.Model):  # type: ignore[name-defined,misc]
    """A receiver (service client) acknowledged an event (RFC 8936 ``ack``/``setErrs``)."""

    __tablename__ = "security_event_acks"
    __table_args__ = (Index("ix_security_event_acks_event", "event_id"),)

    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("service_clients.client_id", ondelete="CASCADE"),
        primary_key=True)
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("security_events.id", ondelete="CASCADE"), primary_key=True)
    acked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SecurityEventCursor(db.Model):  # type: ignore[name-defined,misc]
    """Per receiver: every event with ``id <= acked_through`` is acknowledged or expired,
    so a poll looks only above it (``app.core.security_events.advance``)."""

    __tablename__ = "security_event_cursors"

    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("service_clients.client_id", ondelete="CASCADE"),
        primary_key=True)
    acked_through: Mapped[int] = mapped_column(Integer)
