"""SQLAlchemy event hooks on an app's engine for the length of a block: what the tests
count (statements, commits) they watch on the real engine, no mocks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import event

from app.extensions import db

__all__ = ["engine_hooks"]


@contextmanager
def engine_hooks(app: Flask, **hooks: Callable[..., Any]) -> Iterator[None]:
    """Listen to the engine's events named by the keywords (``commit=``,
    ``before_cursor_execute=``...) inside the block; removed on leaving."""
    with app.app_context():
        engine = db.engine
    for name, hook in hooks.items():
        event.listen(engine, name, hook)
    try:
        yield
    finally:
        for name, hook in hooks.items():
            event.remove(engine, name, hook)
