"""The database rate-limit storage on the test database, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import Flask
from limits.storage import storage_from_string

from app.core.ratelimit_storage import DatabaseStorage
from app.extensions import db

__all__ = ["ManualClock", "database_storage"]


class ManualClock:
    """Epoch seconds that move only when a test sets ``now``."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@contextmanager
def database_storage(app: Flask) -> Iterator[tuple[DatabaseStorage, ManualClock]]:
    """``tessera-db://`` on the app's engine, and its clock."""
    clock = ManualClock()
    with app.app_context():
        made = storage_from_string("tessera-db://", engine=db.engine, clock=clock)
        assert isinstance(made, DatabaseStorage)
        yield made, clock
