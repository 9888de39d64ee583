"""Tessera: the application factory.

``create_app`` runs, in order: configuration → validation → extensions →
errors → request plumbing → blueprints → CLI. Nothing happens at import time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

# `models` is imported for its side effect: every table joins the metadata Alembic reads.
from . import (
    audit,
    cli,
    errors,
    events,
    guard_rails,
    headers,
    http,
    logs,
    metrics,
    models,  # noqa: F401 - see above: imported for its tables
    openapi,
    ratelimit,
    security,
    state,
)
from . import instance as instance_files
from .config import ConfigError, Settings, load_settings
from .core import redis_connections
from .core.clock import Clock, system_clock
from .extensions import db, migrate, redis_store
from .oauth import routes as oauth_routes
from .security import revocation

__all__ = ["create_app", "check_settings", "ConfigError"]


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    clock: Clock | None = None,
    instance_path: str | None = None,
) -> Flask:
    """Build a Tessera app; ``config`` overrides every other source (tests)."""
    app = _bare_app(instance_path)
    _load_config(app, config)
    settings = load_settings(app.config)
    guard_rails.check_production(settings)
    settings = _resolve_secrets(app, settings)
    logs.init_app(settings.log_level, settings.log_format)
    _apply_flask_config(app, settings)
    state.bind(app, settings, clock or system_clock)

    db.init_app(app)
    _tune_sqlite(app)
    migrate.init_app(app, db, directory=_migrations_directory(app))
    redis_store.init_app(app, _redis_client(settings))
    headers.init_app(app)  # WSGI middleware: wrapped by ProxyFix below, so it sees the
    if settings.trusted_proxies:  # client's scheme
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies
        )

    metrics.init_app(app)
    security.init_app(app)
    revocation.init_app(app)
    events.init_app(app)  # after revocation: it listens to the revocation service
    audit.init_app(app)
    errors.init_app(app)
    http.init_app(app)
    _register_blueprints(app)
    ratelimit.init_app(app)  # wraps registered views, so after the blueprints
    openapi.init_app(app)
    cli.init_app(app)
    return app


def check_settings(config: Mapping[str, Any] | None = None) -> Settings:
    """Load and validate the settings as ``create_app`` would, without building the app.

    gunicorn's master calls it before forking, so a bad setting stops the service
    with one line instead of a worker traceback per boot attempt.
    """
    app = _bare_app(None)
    _load_config(app, config)
    settings = load_settings(app.config)
    guard_rails.check_production(settings)
    return settings


def _bare_app(instance_path: str | None) -> Flask:
    return Flask(
        __name__, instance_path=instance_path or _instance_path(), instance_relative_config=True
    )


def _instance_path() -> str | None:
    """``TESSERA_INSTANCE_PATH``, else Flask's choice (None): ``instance/`` beside ``app/``
    in a checkout, ``<prefix>/var/tessera-instance`` when installed, never site-packages."""
    return os.environ.get("TESSERA_INSTANCE_PATH") or None


def _migrations_directory(app: Flask) -> str:
    """The Alembic scripts: inside the installed package, else ``migrations/`` of the checkout."""
    packaged = Path(app.root_path) / "migrations"  # the wheel maps migrations/ there
    return str(packaged if packaged.is_dir() else Path(app.root_path).parent / "migrations")


def _redis_client(settings: Settings) -> redis.Redis | None:
    """The app's Redis client (by URL or through Sentinel), or None without REDIS_URL."""
    target = settings.redis_target
    return None if target is None else redis_connections.connect(target)


def _load_config(app: Flask, overrides: Mapping[str, Any] | None) -> None:
    """Defaults (in app.config) → instance/config.py → environment → ``overrides``."""
    app.config.from_pyfile("config.py", silent=True)
    for name in ("DATABASE_URL", "REDIS_URL"):
        if os.environ.get(name):
            app.config[name] = os.environ[name]
    app.config.from_prefixed_env("TESSERA")
    if overrides:
        app.config.update(overrides)


def _resolve_secrets(app: Flask, settings: Settings) -> Settings:
    """Fill in the key-encryption key: configured, or the embedded default's own file."""
    if settings.key_encryption_key is not None:
        return settings
    if settings.database_url is not None:
        raise ConfigError(
            "setting KEY_ENCRYPTION_KEY (env TESSERA_KEY_ENCRYPTION_KEY): required when "
            "DATABASE_URL is set"
        )
    return dataclasses.replace(settings, key_encryption_key=_instance_kek(Path(app.instance_path)))


def _instance_kek(instance: Path) -> bytes:
    try:
        return instance_files.instance_kek(instance)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _database_uri(app: Flask, settings: Settings) -> str:
    url = settings.database_url
    if url is None:  # the embedded default: created private (0600) before SQLite opens it
        return "sqlite:///" + str(instance_files.embedded_database(Path(app.instance_path)))
    # We ship psycopg 3; plain postgres URLs would ask SQLAlchemy for psycopg2.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _apply_flask_config(app: Flask, settings: Settings) -> None:
    app.config["SQLALCHEMY_DATABASE_URI"] = _database_uri(app, settings)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Several threads and workers share one file: wait for locks instead of failing.
        # Last in, first out: a request's rate-limit counter write and its own
        # transaction then run on one connection. SQLite drops a connection's whole
        # page cache when another connection has committed since it last read, so
        # with the pool's default (first in, first out) every transaction started
        # cold and read its pages back from the log (measured: 28 → 18 page reads
        # per refresh, refreshes 9% faster).
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {
            "connect_args": {"timeout": 15}, "pool_use_lifo": True})
    else:
        # No server-side prepared statements: psycopg prepares a query after five
        # runs, and PostgreSQL may then keep a generic plan made while a table was
        # small. The revocation lookup kept a sequential scan that way once the
        # denylist had grown to 1M rows (bench/revocation.py found it); planning
        # each query with the table's current size costs ~0.1 ms.
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {
            "pool_pre_ping": True, "connect_args": {"prepare_threshold": None}})


_SQLITE_MMAP_BYTES = 256 * 1024 * 1024  # address space, not memory: pages load on use


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (other workers) go on while one writes, and NORMAL sync
    # skips the fsync per commit that WAL makes unnecessary for durability of
    # the database file itself (a power cut may lose the last transactions).
    # Reads through a memory map (shared by every worker through the OS page
    # cache) cost no syscall per page, so a lookup in a denylist of a million
    # rows costs about what it does in an empty one (bench/revocation.py).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES}")
    cursor.close()


def _tune_sqlite(app: Flask) -> None:
    """The embedded default's SQLite settings, applied to each new connection."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    with app.app_context():  # engines exist already; nothing connects here
        event.listen(db.engine, "connect", _sqlite_pragmas)


def _register_blueprints(app: Flask) -> None:
    from .admin import bp as admin_bp
    from .api.routes import bp as api_bp
    from .auth.routes import bp as auth_bp
    from .events.routes import bp as events_bp
    from .mfa.passkey_routes import bp as passkeys_bp
    from .mfa.routes import bp as mfa_bp
    from .oauth.routes import bp as oauth_bp
    from .ops.routes import bp as ops_bp
    from .web import bp as web_bp
    from .web.passkeys import bp as passkey_pages_bp
    from .wellknown.routes import bp as wellknown_bp

    for blueprint in (ops_bp, wellknown_bp, auth_bp, mfa_bp, passkeys_bp, api_bp, admin_bp,
                      oauth_bp, events_bp, web_bp, passkey_pages_bp):
        app.register_blueprint(blueprint)
    oauth_routes.init_app(app)
