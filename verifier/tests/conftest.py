"""Fixtures for the package's tests: a stand-in Tessera on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helper module

from issuer import FakeTessera


@pytest.fixture
def tessera() -> Iterator[FakeTessera]:
    fake = FakeTessera()
    yield fake
    fake.close()
