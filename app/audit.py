"""Audit from inside a request: fills in request id, client IP, user agent, principal."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, has_request_context, request
from sqlalchemy import insert

from . import state
from .core.audit import AuditRecord, InvalidTokenSampler, record, row_of
from .extensions import db
from .models import AuditEvent

__all__ = ["audit", "init_app"]

_SAMPLER = "tessera.audit.sampler"
_SAMPLED = frozenset({"TOKEN_INVALID", "LEGACY_TOKEN_ACCEPTED"})
# The row as one Core INSERT with every column bound: the ORM's unit of work cost more
# per row than the statement itself (a refresh writes two).
_INSERT = insert(AuditEvent.__table__)


def init_app(app: Any) -> None:
    app.extensions[_SAMPLER] = InvalidTokenSampler()


def audit(event: str, *, commit: bool = True, at_once: bool = False, **fields: Any) -> None:
    """Record ``event``; identifiers of the current request are added when known.

    The row is written at once (after whatever the session holds, so ids keep the
    order of the calls) when ``commit`` or ``at_once``; otherwise it waits in the
    session for the flow's flush. ``at_once`` is for a caller that holds the
    database's write lock already or commits next: on SQLite the INSERT takes it.
    """
    if has_request_context():
        fields.setdefault("request_id", g.get("request_id"))
        fields.setdefault("ip", request.remote_addr)
        fields.setdefault("user_agent", request.headers.get("User-Agent"))
        principal = g.get("tessera_principal")
        if principal is not None:
            fields.setdefault("user_id", principal.user_id)
            fields.setdefault("session_id", principal.session_id)
    store = True
    if event in _SAMPLED:  # high volume: logged always, stored sampled (SPEC §9)
        store = current_app.extensions[_SAMPLER].should_store(f"{event}:{fields.get('reason')}")
    entry, now, session = AuditRecord(event=event, **fields), state.now(), db.session()
    if store and (commit or at_once):
        record(session, entry, now, store=False)  # checks the fields, logs the JSON line
        session.flush()  # rows already pending go first (nothing to do when none are)
        session.execute(_INSERT, row_of(entry, now))
    else:
        record(session, entry, now, store=store)
    if commit and store:
        session.commit()

