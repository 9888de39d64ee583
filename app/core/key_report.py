"""What an operator reads about the signing keys (SPEC §4): age, state, when the active
key is due for rotation, when each retired key stops verifying, and what is published."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..models import SigningKey

__all__ = ["KeyView", "PUBLISHED_STATES", "describe_keys"]

PUBLISHED_STATES = frozenset({"standby", "active", "retired"})  # SPEC §4


@dataclass(frozen=True)
class KeyView:
    row: SigningKey
    age: timedelta  # since the key was made
    rotation_due_at: datetime | None  # the active key: activated + KEY_ROTATION_INTERVAL
    rotation_overdue: bool
    expires_at: datetime | None  # a retired key: retired + ACCESS_TOKEN_TTL + leeway
    published: bool


def describe_keys(rows: list[SigningKey], now: datetime, *, rotation_interval: timedelta,
                  retired_lifetime: timedelta) -> list[KeyView]:
    """One view per key, in the order given."""
    views = []
    for row in rows:
        due = None
        if row.state == "active":
            due = (row.activated_at or row.created_at) + rotation_interval
        expires = row.retired_at + retired_lifetime \
            if row.state == "retired" and row.retired_at is not None else None
        views.append(KeyView(row, now - row.created_at, due, due is not None and now >= due,
                             expires, row.state in PUBLISHED_STATES))
    return views
