"""Accessors for the per-app objects kept in ``app.extensions``."""

from __future__ import annotations

from datetime import datetime

from flask import Flask, current_app

from .config import Settings
from .core.clock import Clock

__all__ = ["bind", "settings", "now", "clock"]

_SETTINGS = "tessera.settings"
_CLOCK = "tessera.clock"


def bind(app: Flask, settings_: Settings, clock_: Clock) -> None:
    """Attach the validated settings and the clock to ``app`` (once)."""
    if _SETTINGS in app.extensions:
        raise RuntimeError("settings are already bound to this app")
    app.extensions[_SETTINGS] = settings_
    app.extensions[_CLOCK] = clock_


def settings() -> Settings:
    """The current app's validated settings."""
    bound: Settings = current_app.extensions[_SETTINGS]
    return bound


def clock() -> Clock:
    """The current app's clock."""
    bound: Clock = current_app.extensions[_CLOCK]
    return bound


def now() -> datetime:
    """The current time by the app's clock."""
    return clock()()
