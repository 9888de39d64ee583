"""Login sessions, their refresh tokens and revocations (SPEC §5, §6)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime


class AuthSession(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(64), default="web")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    acr: Mapped[str] = mapped_column(String(16), default="aal1")
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RefreshToken(db.Model):  # type: ignore[name-defined,misc]
    """One refresh token of a session; only its SHA-256 is stored."""

    __tablename__ = "refresh_tokens"
    # The one token of a session that still holds a sealed successor (the one consumed
    # last): a rotation clears it through this index, not by visiting every token the
    # session ever had (one per refresh).
    __table_args__ = (Index("ix_refresh_tokens_sealed", "session_id",
                            sqlite_where=text("successor_sealed IS NOT NULL"),
                            postgresql_where=text("successor_sealed IS NOT NULL")),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The successor token, sealed under a key derived from this (consumed) token:
    # only a holder of this token can open it, during the reuse grace window.
    successor_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Revocation(db.Model):  # type: ignore[name-defined,misc]
    """A revoked jti, session, legacy token hash or user cutoff (SPEC §6).

    ``kind`` is one of ``jti``, ``sid``, ``tokenhash``, ``user``; for ``user``,
    ``not_before`` is the cutoff: tokens of that user issued earlier are refused.
    """

    __tablename__ = "revocations"
    __table_args__ = (Index("uq_revocations_kind_value", "kind", "value", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(128))
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    reason: Mapped[str] = mapped_column(String(64), default="")


class RevocationTrust(db.Model):  # type: ignore[name-defined,misc]
    """Whether the Redis denylist may be trusted, for every worker and host (one row, id 1).

    Redis is trusted only while ``trusted`` is set, Redis's ``epoch`` key holds
    ``epoch`` and the server answers with ``identity`` (run id and replication id,
    which a restart, a snapshot restore or a failover changes). A failed write
    bumps ``generation`` and clears ``trusted``; a rebuild sets it again only if
    ``generation`` did not move while it copied (app/core/revocation_trust.py).
    """

    __tablename__ = "revocation_trust"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
    trusted: Mapped[bool] = mapped_column(Boolean)
    epoch: Mapped[str | None] = mapped_column(String(64), nullable=True)
    identity: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
