"""Signing keys and the service state that goes with them (SPEC §4)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime

KEY_STATES = ("standby", "active", "retired", "expired", "revoked")


class SigningKey(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "signing_keys"
    __table_args__ = (
        # The database, not the code, guarantees a single active key (SPEC §4).
        Index(
            "uq_signing_keys_one_active",
            "state",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[str] = mapped_column(Text)
    # AES-GCM ciphertext of the PEM private key under the key-encryption key.
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ServiceState(db.Model):  # type: ignore[name-defined,misc]
    """Small named values shared by every worker (e.g. the migration phase)."""

    __tablename__ = "service_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LegacyUsage(db.Model):  # type: ignore[name-defined,misc]
    """How many legacy HS256 tokens were accepted per day, and the last one's time."""

    __tablename__ = "legacy_usage"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
