"""The statements that write the ``revocations`` table, one per write (SPEC §6).

Each keeps the later cutoff and the longer life of a revocation in one
statement (a concurrent revoker of the same key waits on the unique index and
then merges), and makes the write visible to the per-process mirrors:

- on SQLite a row that changes takes a new ``id``, one above the largest, so
  a mirror that has read every row up to some ``id`` reads the change with
  the new rows (SQLite's writers take turns: ids grow in commit order), and
  ``purge`` never deletes the row holding the largest ``id``;
- on PostgreSQL the transaction sends ``NOTIFY`` with what it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, scoped_session

from ..models import Revocation
from .revocation_listen import notify_rows
from .revocation_local import MirrorRow, mirror_row

__all__ = ["announce", "insert_if_absent", "live_rows", "merge", "mirror_row", "purge"]

AnySession = Session | scoped_session[Any]


def _postgres(db: AnySession) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def merge(db: AnySession, kind: str, value: str, not_before: datetime | None,
          expires_at: datetime, now: datetime, reason: str) -> None:
    """Insert the revocation, or keep the later cutoff and the longer life of the one there."""
    values = {"kind": kind, "value": value, "not_before": not_before, "created_at": now,
              "expires_at": expires_at, "reason": reason[:64]}
    table = Revocation.__table__
    if _postgres(db):
        pg = postgresql_insert(Revocation).values(**values)
        db.execute(pg.on_conflict_do_update(index_elements=["kind", "value"], set_={
            "expires_at": func.greatest(table.c.expires_at, pg.excluded.expires_at),
            "not_before": func.greatest(table.c.not_before, pg.excluded.not_before)}))
        return
    lite = sqlite_insert(Revocation).values(**values)
    # SQLite's two-argument max() is NULL when either is: coalesce keeps the other.
    db.execute(lite.on_conflict_do_update(index_elements=["kind", "value"], set_={
        "id": select(func.max(table.c.id)).scalar_subquery() + 1,
        "expires_at": func.max(table.c.expires_at, lite.excluded.expires_at),
        "not_before": func.coalesce(func.max(table.c.not_before, lite.excluded.not_before),
                                    table.c.not_before, lite.excluded.not_before)}))


def insert_if_absent(db: AnySession, kind: str, value: str, expires_at: datetime,
                     now: datetime, reason: str) -> bool:
    """Insert unless it exists, in the caller's transaction: True if this call inserted it.
    One statement decides a race: a concurrent inserter waits on the unique (kind, value)
    and inserts nothing."""
    insert = postgresql_insert if _postgres(db) else sqlite_insert
    result = db.execute(
        insert(Revocation).values(kind=kind, value=value, not_before=None, created_at=now,
                                  expires_at=expires_at, reason=reason[:64])
        .on_conflict_do_nothing(index_elements=["kind", "value"])
        .returning(Revocation.id))  # a row back only if inserted (rowcount is unreliable here)
    return result.first() is not None


def announce(db: AnySession, rows: Sequence[MirrorRow]) -> None:
    """Tell the other processes' mirrors, in the writing transaction (PostgreSQL only:
    SQLite's mirrors see every commit through ``PRAGMA data_version``)."""
    if rows and _postgres(db):
        notify_rows(db, rows)  # type: ignore[arg-type]


def purge(db: AnySession, now: datetime) -> int:
    """Delete revocations that outlived everything they revoke; return how many.

    The row with the largest ``id`` stays (see the module docstring): otherwise
    SQLite could hand its ``id`` out again, below what a mirror has read."""
    table = Revocation.__table__
    largest = select(func.max(table.c.id)).scalar_subquery()
    result = db.execute(delete(Revocation).where(Revocation.expires_at <= now,
                                                 Revocation.id < largest))
    db.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def live_rows(session: Session, now: datetime) -> list[tuple[str, str, datetime | None, datetime]]:
    """Every revocation still in force (kind, value, cutoff, expiry)."""
    rows = session.execute(select(Revocation.kind, Revocation.value, Revocation.not_before,
                                  Revocation.expires_at).where(Revocation.expires_at > now))
    return [(kind, value, not_before, expires_at) for kind, value, not_before, expires_at in rows]
