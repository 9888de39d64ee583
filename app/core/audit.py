"""The audit trail (SPEC §9): one JSON log line and one row per event.

Callers pass identifiers and outcomes only. A few field names that could carry
a secret are refused outright, so a careless call fails loudly in tests
instead of leaking a token into the trail.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import AuditEvent

__all__ = ["EVENTS", "AuditRecord", "InvalidTokenSampler", "query", "record", "row_of"]

EVENTS = frozenset({
    "LOGIN_SUCCESS", "LOGIN_FAILURE", "MFA_SUCCESS", "MFA_FAILURE", "MFA_ENROLLED",
    "MFA_DISABLED", "TOKEN_ISSUED", "TOKEN_REFRESHED", "REFRESH_FAILED",
    "REFRESH_REUSE_DETECTED", "TOKEN_REVOKED", "SESSION_REVOKED", "USER_TOKENS_REVOKED",
    "TOKEN_INVALID", "AUTHZ_DENIED", "KEY_ROTATED", "KEY_REVOKED", "LEGACY_TOKEN_ACCEPTED",
    "LEGACY_TOKEN_EXCHANGED", "MIGRATION_PHASE_CHANGED", "RATE_LIMITED",
    "USER_CREATED", "USER_UPDATED", "PASSWORD_CHANGED", "PASSWORD_CHANGE_FAILED",
    "USER_MFA_RESET", "USER_PASSWORD_SET", "CLIENT_CREATED", "CLIENT_UPDATED",
    "CLIENT_SECRET_ROTATED", "CLIENT_DELETED", "KEYS_RESEALED",
    "PASSKEY_REGISTERED", "PASSKEY_RENAMED", "PASSKEY_REMOVED",
})
_FORBIDDEN_DETAILS = frozenset({"token", "access_token", "refresh_token", "password", "code",
                                "secret", "mfa_token", "key"})
log = logging.getLogger("tessera.audit")


@dataclass(frozen=True)
class AuditRecord:
    """Who did what, from where; everything optional but the event."""

    event: str
    user_id: int | None = None
    actor_id: int | None = None
    session_id: str | None = None
    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    result: str = "success"
    reason: str | None = None
    kid: str | None = None
    details: dict[str, Any] | None = None


def record(session: Session, entry: AuditRecord, now: datetime, *, store: bool = True) -> None:
    """Log ``entry`` as one JSON line and (unless ``store`` is false) add it as a row."""
    if entry.event not in EVENTS:
        raise ValueError(f"unknown audit event {entry.event}")
    details = entry.details or {}
    leaked = _FORBIDDEN_DETAILS.intersection(details)
    if leaked:
        raise ValueError(f"audit details may not carry {min(leaked)}")
    fields = {k: v for k, v in entry.__dict__.items() if v is not None and k != "details"}
    payload = {"at": now.isoformat(), **fields, **({"details": details} if details else {})}
    # The text for plain handlers, made only if one asks: app.logs' JSON formatter prints
    # the fields instead, and encoding the line for nobody cost a refresh two dumps.
    log.info("%s", _AsJson(payload), extra={"audit": payload})
    if store:
        session.add(AuditEvent(**row_of(entry, now)))


class _AsJson:
    """The payload's JSON text, encoded when a handler formats the message (lazily)."""

    __slots__ = ("payload",)

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload

    def __str__(self) -> str:
        return json.dumps(self.payload, default=str, sort_keys=True)


def row_of(entry: AuditRecord, now: datetime) -> dict[str, Any]:
    """The audit row's columns for ``entry``, every one given (an ORM object or an INSERT)."""
    return {
        "at": now, "event": entry.event, "user_id": entry.user_id, "actor_id": entry.actor_id,
        "session_id": entry.session_id, "request_id": entry.request_id, "ip": entry.ip,
        "user_agent": entry.user_agent[:512] if entry.user_agent else None,
        "result": "success" if entry.result is None else entry.result,  # the column default
        "reason": entry.reason, "kid": entry.kid,
        "details": entry.details or {},
    }


def query(
    session: Session,
    *,
    user_id: int | None = None,
    event: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[AuditEvent]:
    """Events newest first, filtered; page with ``before_id`` (the last id of the previous page)."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if user_id is not None:
        stmt = stmt.where(AuditEvent.user_id == user_id)
    if event is not None:
        stmt = stmt.where(AuditEvent.event == event)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    if before_id is not None:
        stmt = stmt.where(AuditEvent.id < before_id)
    return list(session.scalars(stmt))


class InvalidTokenSampler:
    """TOKEN_INVALID can come in floods: store at most ``per_minute`` rows per reason.

    Every occurrence is still logged and counted (metrics); only the table is sampled,
    so an attacker cannot fill the database.
    """

    def __init__(self, per_minute: int = 10) -> None:
        self._per_minute = per_minute
        self._window: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def should_store(self, reason: str, monotonic: float | None = None) -> bool:
        minute = int((monotonic if monotonic is not None else time.monotonic()) // 60)
        with self._lock:
            window, count = self._window.get(reason, (minute, 0))
            if window != minute:
                window, count = minute, 0
            self._window[reason] = (window, count + 1)
            return count < self._per_minute
