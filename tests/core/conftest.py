"""Fixtures of the Flask-free core tests: an engine over the models and a session on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.support.databases import make_engine, postgres_url, reset_postgres

_made = [False]  # the PostgreSQL schema is created once per run, emptied per test


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An empty database with every table (a SQLite file, or PostgreSQL's core_tests schema)."""
    if postgres_url() is not None:
        reset_postgres(_made[0])
        _made[0] = True
    made = make_engine(tmp_path)
    yield made
    made.dispose()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A plain ORM session on the engine, as a request holds one."""
    with Session(engine) as session:
        yield session
