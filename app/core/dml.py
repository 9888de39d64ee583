"""The row count of an UPDATE or DELETE, typed.

``Session.execute`` is annotated to return ``Result``; for a DML statement it
is a ``CursorResult``, which has ``rowcount``. Said once here rather than
silenced at every conditional UPDATE.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result

__all__ = ["rowcount"]


def rowcount(result: Result[Any]) -> int:
    """How many rows the UPDATE or DELETE behind ``result`` matched."""
    return int(cast("CursorResult[Any]", result).rowcount)
