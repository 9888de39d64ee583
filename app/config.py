"""Settings: names, defaults, parsing and validation, in one place.

Every setting is a field of :class:`Settings` (declared in ``app.settings``) with
its default, its parser and its description given once (the README's table lists
the same names; a test keeps the two in step). Values come, in this order, from
the defaults there,
``instance/config.py``, ``TESSERA_<NAME>`` environment variables (plus the
usual ``DATABASE_URL`` and ``REDIS_URL``) and the mapping given to
``create_app``. :func:`load_settings` turns that raw mapping into a frozen,
typed :class:`Settings` or stops start-up with a :class:`ConfigError` naming
the bad key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from .settings import MIGRATION_PHASES, SIGNING_ALGORITHMS, Settings

__all__ = [
    "MIGRATION_PHASES",
    "SIGNING_ALGORITHMS",
    "STEP_UP_MAX_AGE",
    "ConfigError",
    "Settings",
    "load_settings",
    "setting_default",
    "setting_docs",
]

# Seconds: how recent the MFA must be for a sensitive change (SPEC §7, §8): an admin's
# change, the account export, turning MFA off, new recovery codes.
STEP_UP_MAX_AGE = 300


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


def load_settings(raw: Mapping[str, Any]) -> Settings:
    """Parse and validate every setting from ``raw``; raise ConfigError naming the first bad one."""
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = f.name.upper()
        value = raw.get(name)
        if value is None:  # unset (Flask itself presets some names, e.g. MAX_CONTENT_LENGTH)
            value = f.metadata["default"]
        try:
            values[f.name] = f.metadata["parse"](value)
        except ValueError as exc:
            raise ConfigError(f"setting {name} (env TESSERA_{name}): {exc}") from None
    _check_sentinels(values)
    return Settings(**values)


def setting_default(name: str) -> Any:
    """The parsed default of setting ``name`` (e.g. to tell whether it was left alone)."""
    for f in fields(Settings):
        if f.name.upper() == name:
            return f.metadata["parse"](f.metadata["default"])
    raise KeyError(name)


def _check_sentinels(values: Mapping[str, Any]) -> None:
    """Sentinel needs REDIS_URL for the credentials and TLS options, and TCP."""
    if not values["redis_sentinels"]:
        return
    url = values["redis_url"]
    if url is None:
        raise ConfigError("setting REDIS_URL (env REDIS_URL): required when REDIS_SENTINELS "
                          "is set (it gives the scheme, credentials, db and TLS options)")
    if url.startswith("unix://"):
        raise ConfigError("setting REDIS_URL (env REDIS_URL): a unix:// socket cannot be "
                          "used with REDIS_SENTINELS; use redis:// or rediss://")


def setting_docs() -> list[tuple[str, Any, str]]:
    """(name, default, description) of every setting, for the README and the CLI."""
    return [(f.name.upper(), f.metadata["default"], f.metadata["doc"]) for f in fields(Settings)]
