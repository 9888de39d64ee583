"""A user's passkeys: listed, named, removed (issue 22); Flask-free.

Each writer commits its own work and rolls back on failure, as ``core.mfa`` does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Result, delete, exists, select, update
from sqlalchemy.orm import Session

from ..models import Passkey, WebauthnChallenge

__all__ = ["has_passkeys", "list_passkeys", "passkeys_among", "remove_all", "remove_passkey",
           "rename_passkey", "rowcount"]


def rowcount(result: Result[Any]) -> int:
    """Rows a DML statement touched."""
    return int(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult for DML


def list_passkeys(session: Session, user_id: int) -> list[Passkey]:
    """The user's passkeys, oldest first."""
    return list(session.scalars(select(Passkey).where(Passkey.user_id == user_id)
                                .order_by(Passkey.id)))


def has_passkeys(session: Session, user_id: int) -> bool:
    """Whether the user has at least one passkey (a second factor, like a confirmed TOTP)."""
    return bool(session.scalar(select(exists().where(Passkey.user_id == user_id))))


def passkeys_among(session: Session, user_ids: list[int]) -> dict[int, list[Passkey]]:
    """The passkeys of each of ``user_ids`` that has any, in one query (a page of users)."""
    found: dict[int, list[Passkey]] = {}
    if user_ids:
        for passkey in session.scalars(select(Passkey).where(Passkey.user_id.in_(user_ids))
                                       .order_by(Passkey.id)):
            found.setdefault(passkey.user_id, []).append(passkey)
    return found


def _write(session: Session, statement: Any) -> int:
    try:
        result = session.execute(statement.execution_options(synchronize_session=False))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return rowcount(result)


def rename_passkey(session: Session, user_id: int, passkey_id: int, name: str) -> bool:
    """Name the user's passkey ``passkey_id``; False if they have no such passkey."""
    return _write(session, update(Passkey).where(Passkey.id == passkey_id,
                                                  Passkey.user_id == user_id)
                  .values(name=name)) == 1


def remove_passkey(session: Session, user_id: int, passkey_id: int) -> bool:
    """Remove the user's passkey ``passkey_id``; False if they have no such passkey."""
    return _write(session, delete(Passkey).where(Passkey.id == passkey_id,
                                                  Passkey.user_id == user_id)) == 1


def remove_all(session: Session, user_id: int) -> int:
    """Remove every passkey of the user and their pending challenges (an MFA reset)."""
    _write(session, delete(WebauthnChallenge).where(WebauthnChallenge.user_id == user_id))
    return _write(session, delete(Passkey).where(Passkey.user_id == user_id))
