"""Audit from inside a request: fills in request id, client IP, user agent, principal."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, has_request_context, request
from sqlalchemy import bindparam, event, insert
from sqlalchemy.orm import Session, SessionTransaction

from . import state
from .core.audit import AuditRecord, InvalidTokenSampler, record, row_of
from .core.compiled_sql import CompiledStatement
from .extensions import db
from .models import AuditEvent

__all__ = ["audit", "init_app"]

_SAMPLER = "tessera.audit.sampler"
_SAMPLED = frozenset({"TOKEN_INVALID", "LEGACY_TOKEN_ACCEPTED"})
# The row as one Core INSERT with every column bound, run on the DBAPI cursor
# (app.core.compiled_sql): the ORM's unit of work cost more per row than the statement
# itself (a refresh writes two). Rows a flow defers go in one executemany with the next
# row written at once, or before the commit.
_INSERT = CompiledStatement(insert(AuditEvent.__table__).values(
    {column.name: bindparam(column.name) for column in AuditEvent.__table__.columns
     if column.name != "id"}).inline())
# Where a session keeps its transaction's deferred rows until it writes or drops them.
_DEFERRED = "tessera.audit.deferred"


def init_app(app: Any) -> None:
    app.extensions[_SAMPLER] = InvalidTokenSampler()
    # Session-class hooks (every app's sessions), registered once per process.
    if not event.contains(Session, "before_commit", _write_deferred):
        event.listen(Session, "before_commit", _write_deferred)
        event.listen(Session, "after_soft_rollback", _drop_deferred)


def audit(event: str, *, commit: bool = True, at_once: bool = False, defer: bool = False,
          **fields: Any) -> None:
    """Record ``event``; identifiers of the current request are added when known.

    The row is written at once (after whatever the session holds, so ids keep the
    order of the calls) when ``commit`` or ``at_once``; otherwise it waits in the
    session for the flow's flush. ``at_once`` is for a caller that holds the
    database's write lock already or commits next: on SQLite the INSERT takes it.
    ``defer`` (with ``commit`` false, inside a transaction): the row is written as a
    Core INSERT with the next row written at once, or just before the commit, in one
    statement with it; a rollback drops it. For a flow's last rows, which nothing
    reads before the commit. The JSON line is logged at the call, in every case.
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
    if store and defer and not commit and session.in_transaction():
        record(session, entry, now, store=False)  # checks the fields, logs the JSON line
        session.info.setdefault(_DEFERRED, []).append(row_of(entry, now))
    elif store and (commit or at_once):
        record(session, entry, now, store=False)
        session.flush()  # rows already pending go first (nothing to do when none are)
        rows = [*session.info.pop(_DEFERRED, ()), row_of(entry, now)]
        _INSERT.run_many(session.connection(), rows)
    else:
        record(session, entry, now, store=store)
    if commit and store:
        session.commit()


def _write_deferred(session: Session) -> None:
    """Before a commit: the transaction's deferred rows, in one INSERT."""
    rows = session.info.pop(_DEFERRED, None)
    if rows:
        _INSERT.run_many(session.connection(), rows)


def _drop_deferred(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the whole transaction, its deferred rows with it
        session.info.pop(_DEFERRED, None)

