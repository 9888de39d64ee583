"""What every login, refresh and account flow shares: messages, the started session,
the client's details, and how a flow records its audit rows.

``audit()`` leaves committing to the caller: a flow either commits its rows at
once (``record``) or leaves them in the transaction that its last step
commits (``pending``), so one request costs one commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from flask import request

from .. import state
from ..accounts import BAD_CODE, WRONG_PASSWORD, kek
from ..audit import audit
from ..core import sessions as session_service
from ..core.refresh_statements import SessionRow, UserRow
from ..extensions import db
from ..models import AuthSession, User
from ..security.issuing import session_limits

__all__ = [
    "BAD_CODE",
    "LOGIN_FAILED",
    "SESSION_ENDED",
    "StartedSession",
    "WRONG_PASSWORD",
    "kek",
    "pending",
    "record",
    "start_session",
]

LOGIN_FAILED = "Wrong username or password."
SESSION_ENDED = "This session has ended; please log in again."


@dataclass(frozen=True)
class StartedSession:
    """A session just created or refreshed, with its new (raw) refresh token: the ORM
    objects of a new session, a refresh's plain rows (read without the ORM)."""

    user: User | UserRow
    session: AuthSession | SessionRow
    refresh_token: str
    # Read while the row is loaded: after the commit it would cost a query.
    expires_at: datetime
    renewed: bool = False  # a refresh of an existing session, not a login
    # A new session: when its credential was checked, and the password hash it matched
    # (confirm_new_session refuses it if a user revocation overtook the login).
    checked_at: datetime | None = None
    password_hash: str | None = None
    # The access token and its claims, when the flow signed it before writing (refresh).
    access: tuple[str, dict[str, Any]] | None = None


def record(event: str, **fields: Any) -> None:
    """Audit ``event`` and commit it (with whatever the flow left uncommitted)."""
    audit(event, commit=False, at_once=True, **fields)  # the commit follows: no lock sooner
    db.session.commit()


def pending(event: str, **fields: Any) -> None:
    """Audit ``event`` in the flow's transaction; the flow's last step commits it.

    The row waits for that commit (``audit(defer=True)``): written with the flow's last
    audit row in one INSERT, no ORM flush, no statement of its own."""
    audit(event, commit=False, defer=True, **fields)


class _ClientInfo(TypedDict):
    user_agent: str
    ip: str


def _client() -> _ClientInfo:
    return {"user_agent": request.headers.get("User-Agent", ""), "ip": request.remote_addr or ""}


def start_session(user: User, *, acr: str = "aal1", amr: list[str] | None = None,
                  client_id: str = "web", checked_at: datetime | None = None,
                  password_hash: str | None = None) -> StartedSession:
    """A new session for ``user`` from this request's client (committed by
    ``issue_tokens``, in one transaction with its audit rows); ``checked_at``: when the
    credential was checked (default now)."""
    now = state.now()
    sess, refresh_token = session_service.new_session(
        user, now=now, limits=session_limits(), client_id=client_id, acr=acr, amr=amr,
        **_client(),
    )  # written by issue_tokens' confirm_new_session, with two Core INSERTs
    return StartedSession(user, sess, refresh_token, sess.expires_at,
                          checked_at=checked_at or now, password_hash=password_hash)
