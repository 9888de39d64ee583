"""Rate-limit counters kept in the database when there is no Redis (SPEC §9)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime


class RateLimitCounter(db.Model):  # type: ignore[name-defined,misc]
    """One fixed window of one limit: ``count`` hits until ``expires_at``.

    Written only by ``app.core.ratelimit_storage``, one statement per change;
    a row whose window has passed counts as absent until it is reused or purged.
    """

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
