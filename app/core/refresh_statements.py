"""The refresh rotation's SQL, built once: constructing these per request cost more than
running them (used by ``app.core.sessions``)."""

from __future__ import annotations

from sqlalchemy import LargeBinary, and_, bindparam, case, insert, or_, select, update

from ..models import AuthSession, RefreshToken, User
from ..models.base import UTCDateTime

__all__ = ["ADD_SUCCESSOR", "CONSUME", "FIND", "TOUCH"]

FIND = (select(RefreshToken, AuthSession, User)
        .outerjoin(AuthSession, AuthSession.id == RefreshToken.session_id)
        .outerjoin(User, User.id == AuthSession.user_id)
        .where(RefreshToken.token_hash == bindparam("token_hash")))
# Core statements on the tables, not through the ORM: an ORM-enabled UPDATE goes through
# the bulk-persistence path, which rebuilds the statement (and its cache key) on every
# execution; that cost more than the UPDATE itself.
_tokens = RefreshToken.__table__
_MINE = _tokens.c.id == bindparam("rid")
CONSUME = (update(_tokens)
           .where(_tokens.c.session_id == bindparam("sid"),
                  or_(and_(_MINE, _tokens.c.consumed_at.is_(None)),
                      and_(_tokens.c.id != bindparam("rid"),
                           _tokens.c.successor_sealed.is_not(None))))
           .values(consumed_at=case((_MINE, bindparam("now", type_=UTCDateTime())),
                                    else_=_tokens.c.consumed_at),
                   successor_sealed=case((_MINE, bindparam("sealed", type_=LargeBinary())),
                                         else_=None))
           .returning(_tokens.c.id))
# The successor and the session's last use as Core statements, not through the unit of
# work: the ORM flush of two objects cost more than the rest of the rotation's SQL.
ADD_SUCCESSOR = insert(_tokens).values(
    session_id=bindparam("sid"), token_hash=bindparam("token_hash"),
    created_at=bindparam("now", type_=UTCDateTime()))
TOUCH = (update(AuthSession.__table__)
         .where(AuthSession.__table__.c.id == bindparam("sid"))
         .values(last_used_at=bindparam("now", type_=UTCDateTime())))
