"""Audit from inside a request: fills in request id, client IP, user agent, principal."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, has_request_context, request

from . import state
from .core.audit import AuditRecord, InvalidTokenSampler, record
from .extensions import db

__all__ = ["audit", "init_app"]

_SAMPLER = "tessera.audit.sampler"
_SAMPLED = frozenset({"TOKEN_INVALID", "LEGACY_TOKEN_ACCEPTED"})


def init_app(app: Any) -> None:
    app.extensions[_SAMPLER] = InvalidTokenSampler()


def audit(event: str, *, commit: bool = True, **fields: Any) -> None:
    """Record ``event``; identifiers of the current request are added when known."""
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
    record(db.session(), AuditRecord(event=event, **fields), state.now(), store=store)
    if commit and store:
        db.session.commit()
