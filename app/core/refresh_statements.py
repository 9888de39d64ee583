"""The refresh rotation's SQL, built once: constructing these per request cost more than
running them (used by ``app.core.sessions``).

Every statement here is a Core statement on the tables, not through the ORM, and the
rotation reads plain frozen rows (``TokenRow``, ``SessionRow``, ``UserRow``), not ORM
objects: loading three mapped objects (identity map, instance state, expiry on commit)
cost more than the query, and an ORM-enabled UPDATE went through the bulk-persistence
path, which rebuilt the statement and its cache key on every execution.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, and_, bindparam, case, insert, or_, select, update

from ..models import AuthSession, RefreshToken, User
from ..models.base import UTCDateTime

__all__ = ["ADD_SUCCESSOR", "CONSUME", "FIND", "TOKEN_BY_ID", "TOUCH", "SessionRow",
           "TokenRow", "UserRow", "found_rows", "token_row"]

_tokens = RefreshToken.__table__
_sessions = AuthSession.__table__
_users = User.__table__


@dataclass(frozen=True, slots=True)
class TokenRow:
    """What a rotation reads of a refresh token's row."""

    id: int
    session_id: str
    consumed_at: datetime | None
    successor_sealed: bytes | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """What a rotation and its access token read of the session's row."""

    id: str
    user_id: int
    client_id: str
    revoked_at: datetime | None
    expires_at: datetime
    last_used_at: datetime
    acr: str
    amr: list[str]
    auth_time: datetime


@dataclass(frozen=True, slots=True)
class UserRow:
    """What a rotation and its access token read of the user's row."""

    id: int
    disabled: bool
    roles: list[str]


_TOKEN_COLUMNS = (_tokens.c.id, _tokens.c.session_id, _tokens.c.consumed_at,
                  _tokens.c.successor_sealed)
_SESSION_COLUMNS = (_sessions.c.id, _sessions.c.user_id, _sessions.c.client_id,
                    _sessions.c.revoked_at, _sessions.c.expires_at, _sessions.c.last_used_at,
                    _sessions.c.acr, _sessions.c.amr, _sessions.c.auth_time)
_USER_COLUMNS = (_users.c.id, _users.c.disabled, _users.c.roles)
_T, _S = len(_TOKEN_COLUMNS), len(_TOKEN_COLUMNS) + len(_SESSION_COLUMNS)

FIND = (select(*_TOKEN_COLUMNS, *_SESSION_COLUMNS, *_USER_COLUMNS)
        .select_from(_tokens)
        .outerjoin(_sessions, _sessions.c.id == _tokens.c.session_id)
        .outerjoin(_users, _users.c.id == _sessions.c.user_id)
        .where(_tokens.c.token_hash == bindparam("token_hash")))
TOKEN_BY_ID = select(*_TOKEN_COLUMNS).where(_tokens.c.id == bindparam("rid"))


def token_row(values: Any) -> TokenRow:
    """A ``TokenRow`` of the token columns of a result row (FIND's first, TOKEN_BY_ID's)."""
    return TokenRow(*values[:_T])


def found_rows(values: Any) -> tuple[TokenRow, SessionRow | None, UserRow | None]:
    """FIND's result row as the token, its session and its user (None when missing)."""
    session = SessionRow(*values[_T:_S]) if values[_T] is not None else None
    user = UserRow(*values[_S:]) if values[_S] is not None else None
    return token_row(values), session, user


_MINE = _tokens.c.id == bindparam("rid")
_SESSION = _tokens.c.session_id == bindparam("sid")
# Each branch whole, so that each has an index: the token by its key, and the session's
# older token still holding a sealed successor by ix_refresh_tokens_sealed (a partial
# index). With the session test outside the OR, the database visited every token the
# session ever had.
CONSUME = (update(_tokens)
           .where(or_(and_(_MINE, _tokens.c.consumed_at.is_(None), _SESSION),
                      and_(_SESSION, _tokens.c.successor_sealed.is_not(None),
                           _tokens.c.id != bindparam("rid"))))
           .values(consumed_at=case((_MINE, bindparam("now", type_=UTCDateTime())),
                                    else_=_tokens.c.consumed_at),
                   successor_sealed=case((_MINE, bindparam("sealed", type_=LargeBinary())),
                                         else_=None))
           .returning(_tokens.c.id))
# The successor and the session's last use: Core statements, not the unit of work.
# Inline: nobody reads the new row's id, so PostgreSQL need not return it.
ADD_SUCCESSOR = insert(_tokens).values(
    session_id=bindparam("sid"), token_hash=bindparam("token_hash"),
    created_at=bindparam("now", type_=UTCDateTime())).inline()
TOUCH = (update(_sessions)
         .where(_sessions.c.id == bindparam("sid"))
         .values(last_used_at=bindparam("now", type_=UTCDateTime())))
