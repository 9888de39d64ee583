"""Databases for the Flask-free unit tests of app/core: an engine over the models, no app.

SQLite: a fresh file per test, tables made from the models' metadata, the
connection pragmas production uses (WAL, foreign keys). PostgreSQL (when
``TEST_DATABASE_URL`` is set): a schema of its own (``core_tests``, named in
the URL's ``options`` so that a raw psycopg connection made from the URL, as
the LISTEN watch makes one, sees it too), created once and emptied per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from app.core.sessions import SessionLimits
from app.models import User

__all__ = ["LIMITS", "NOW", "SCHEMA", "add_user", "commits", "make_engine", "postgres_url",
           "reset_postgres"]

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LIMITS = SessionLimits(max_age=timedelta(days=30), idle_timeout=timedelta(days=7),
                       reuse_grace=timedelta(seconds=30))
SCHEMA = "core_tests"
METADATA = User.metadata


def postgres_url() -> str | None:
    """TEST_DATABASE_URL as a psycopg URL with this module's schema first, or None."""
    raw = os.environ.get("TEST_DATABASE_URL")
    if not raw:
        return None
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            raw = "postgresql+psycopg://" + raw[len(prefix):]
    joiner = "&" if "?" in raw else "?"
    return f"{raw}{joiner}options=-csearch_path%3D{SCHEMA}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(tmp_path: Path) -> Engine:
    """An engine over an empty database with every table (SQLite file or PG schema)."""
    url = postgres_url()
    if url is not None:
        return create_engine(url, connect_args={"prepare_threshold": None})
    engine = create_engine(f"sqlite:///{tmp_path / 'core.db'}", connect_args={"timeout": 15})
    event.listen(engine, "connect", _sqlite_pragmas)
    METADATA.create_all(engine)
    return engine


def reset_postgres(schema_made: bool) -> None:
    """Create the schema and tables (first call), else empty every table."""
    url = postgres_url()
    assert url is not None
    engine = create_engine(url)
    with engine.begin() as conn:
        if not schema_made:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
            METADATA.create_all(conn)
        else:
            names = ", ".join(table.name for table in METADATA.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


def add_user(db: Session, name: str = "ada", now: datetime = NOW,
             password_hash: str = "argon2-hash") -> User:
    """A committed user row (no password hashing: the core under test never checks one)."""
    user = User(username=name, password_hash=password_hash, roles=["user"], disabled=False,
                created_at=now - timedelta(days=1),
                password_changed_at=now - timedelta(days=1))
    db.add(user)
    db.commit()
    return user


@contextmanager
def commits(engine: Engine) -> Iterator[list[int]]:
    """Count the transactions committed on ``engine`` inside the block (list of one int)."""
    count = [0]

    def seen(_conn: Any) -> None:
        count[0] += 1

    event.listen(engine, "commit", seen)
    try:
        yield count
    finally:
        event.remove(engine, "commit", seen)
