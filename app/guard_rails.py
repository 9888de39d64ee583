"""Settings that must not reach production, checked once at start-up.

A configuration is a production one when it names a database server
(``DATABASE_URL`` other than SQLite) or listens beyond loopback (``BIND``).
There, the development defaults would quietly issue tokens for the wrong
issuer, hand cookies over plain HTTP, or seal keys with a key left on one
host's disk; so start-up stops with one line naming the setting instead.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .config import ConfigError, Settings, setting_default

__all__ = ["check_production", "is_production"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_production(settings: Settings) -> bool:
    """True when the settings name a database server or a non-loopback address."""
    server_database = settings.database_url is not None and not settings.database_url.startswith(
        "sqlite")
    return server_database or not _bind_is_loopback(settings.bind)


def check_production(settings: Settings) -> None:
    """Raise ConfigError naming the first development-only setting of a production config."""
    if not is_production(settings):
        return
    why = "a production configuration (DATABASE_URL names a server, or BIND is not loopback)"
    if settings.issuer == setting_default("ISSUER"):
        _refuse("ISSUER", f"must be the service's public URL in {why}")
    if not settings.cookie_secure and not _is_loopback_host(urlsplit(settings.issuer).hostname):
        _refuse("COOKIE_SECURE", f"must be true in {why}")
    if settings.key_encryption_key is None:
        _refuse("KEY_ENCRYPTION_KEY", f"required in {why}")


def _refuse(name: str, message: str) -> None:
    raise ConfigError(f"setting {name} (env TESSERA_{name}): {message}")


def _bind_is_loopback(bind: str) -> bool:
    if bind.startswith("unix:"):
        return True  # a socket file: only this host reaches it
    host = bind.rsplit(":", 1)[0].strip("[]")
    return _is_loopback_host(host)


def _is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
