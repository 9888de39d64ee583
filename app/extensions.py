"""Extension objects, made once and bound to each app with ``init_app``.

This module imports nothing of Tessera's own, so every other module may import
it. Per-app resources live in ``app.extensions`` behind one accessor each.
"""

from __future__ import annotations

import redis
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

__all__ = ["db", "migrate", "redis_store", "RedisStore"]

# Stable constraint names, so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate(compare_type=True, render_as_batch=True)


class RedisStore:
    """Holds each app's Redis client (or None without ``REDIS_URL``)."""

    extension_key = "tessera.redis"

    def init_app(self, app: Flask, client: redis.Redis | None) -> None:
        """Keep ``client`` (made lazily by the factory: nothing is opened yet) for ``app``."""
        if self.extension_key in app.extensions:
            raise RuntimeError("RedisStore is already registered on this app")
        app.extensions[self.extension_key] = client

    @property
    def client(self) -> redis.Redis | None:
        """The current app's client, or None when Redis is not configured."""
        return current_app.extensions[self.extension_key]  # type: ignore[no-any-return]


redis_store = RedisStore()
