"""Fixtures: real apps on a migrated database, a real redis-server, a controllable clock.

The database is SQLite (a migrated template copied per test) unless
``TEST_DATABASE_URL`` names a PostgreSQL, which the README's test command
starts; there the schema is migrated once and every table emptied per test.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from app import create_app
from app.core.clock import FrozenClock
from app.extensions import db
from app.security.keyops import ensure_signing_keys
from tests.support.servers import ROOT, RedisServer

MIGRATIONS = str(ROOT / "migrations")
# A fixed key-encryption key for tests only; real ones come from the environment.
TEST_KEK = base64.urlsafe_b64encode(b"k" * 32).decode()
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")


def _postgres_url() -> str:
    assert POSTGRES_URL is not None
    for prefix in ("postgres://", "postgresql://"):
        if POSTGRES_URL.startswith(prefix):
            return "postgresql+psycopg://" + POSTGRES_URL[len(prefix):]
    return POSTGRES_URL


def pytest_report_header() -> str:
    return f"database: {'PostgreSQL ' + POSTGRES_URL if POSTGRES_URL else 'SQLite'}"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the machine's environment."""
    for name in list(os.environ):
        if name.startswith("TESSERA_") or name in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(name)


def _migrate(url: str, tmp: Path) -> None:
    app = create_app(
        {"DATABASE_URL": url, "KEY_ENCRYPTION_KEY": TEST_KEK, "ISSUER": "http://localhost"},
        instance_path=str(tmp)
    )
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        db.engine.dispose()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database: a SQLite file to copy, or the PostgreSQL URL."""
    tmp = tmp_path_factory.mktemp("template")
    if POSTGRES_URL:
        engine = create_engine(_postgres_url())
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        _migrate(POSTGRES_URL, tmp)
        return POSTGRES_URL
    path = tmp / "template.db"
    _migrate(f"sqlite:///{path}", tmp)
    return str(path)


def _empty_postgres() -> None:
    engine = create_engine(_postgres_url())
    with engine.begin() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                 "AND tablename <> 'alembic_version'")
        ).scalars().all()
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def database_url(database_template: str, tmp_path: Path) -> str:
    """A migrated, empty database for this test."""
    if POSTGRES_URL:
        _empty_postgres()
        return POSTGRES_URL
    path = tmp_path / "tessera.db"
    shutil.copyfile(database_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that tests move by hand."""
    return FrozenClock()


@pytest.fixture
def base_config(database_url: str) -> dict[str, Any]:
    """Settings every test app starts from."""
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "KEY_ENCRYPTION_KEY": TEST_KEK,
        "ISSUER": "http://localhost",
    }


@pytest.fixture
def make_app(
    base_config: dict[str, Any], tmp_path: Path
) -> Iterator[Callable[..., Flask]]:
    """Build an app with overrides: ``make_app(ACCESS_TOKEN_TTL=60, clock=...)``."""
    made: list[Flask] = []

    def build(clock: Any = None, keys: bool = True, **overrides: Any) -> Flask:
        app = create_app(
            {**base_config, **overrides}, clock=clock, instance_path=str(tmp_path / "instance")
        )
        made.append(app)
        if keys:  # as `make run` does: an active and a standby signing key
            with app.app_context():
                ensure_signing_keys()
        return app

    yield build
    for app in made:  # close pooled connections so PostgreSQL can be emptied next test
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the run; tests that kill it restart it."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The real Redis, running and empty."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    with redis_server.client() as client:  # closed here: a leaked socket warns (an error)
        client.flushall()
    return redis_server.url
