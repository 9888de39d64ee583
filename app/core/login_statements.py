"""A new session's SQL, built once (used by ``app.core.sessions``).

A login writes its session and first refresh token with two Core INSERTs and
re-reads the user with one prepared SELECT: flushing two ORM objects through the
unit of work, and building the SELECT per login, each cost more than the statements.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, insert, select

from ..models import AuthSession, Revocation, User

__all__ = ["INSERT_SESSION", "OVERTAKEN_CHECK", "session_values"]

_sessions = AuthSession.__table__
_users = User.__table__
_revocations = Revocation.__table__

INSERT_SESSION = insert(_sessions)
# The user and their revoke-all cutoff, under a shared lock on the user's row (PostgreSQL;
# SQLite's write lock is held already): see ``sessions.confirm_new_session``.
OVERTAKEN_CHECK = (
    select(_users.c.disabled, _users.c.password_hash, _users.c.password_changed_at,
           _revocations.c.not_before)
    .select_from(_users)
    .outerjoin(_revocations, and_(_revocations.c.kind == "user",
                                  _revocations.c.value == bindparam("uid_text")))
    .where(_users.c.id == bindparam("uid"))
    .with_for_update(read=True, of=_users))


def session_values(sess: AuthSession) -> dict[str, Any]:
    """Every column of a new (not yet written) session, for ``INSERT_SESSION``."""
    return {"id": sess.id, "user_id": sess.user_id, "client_id": sess.client_id,
            "created_at": sess.created_at, "last_used_at": sess.last_used_at,
            "expires_at": sess.expires_at, "user_agent": sess.user_agent, "ip": sess.ip,
            "acr": sess.acr, "amr": sess.amr, "auth_time": sess.auth_time,
            "revoked_at": None}
