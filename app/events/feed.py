"""The stream's service: who polls, what they acknowledge, what they are sent.

A poll (RFC 8936 §2.4) first records the receiver's acknowledgements (``ack``,
and ``setErrs``, which also end redelivery), commits them, then answers with the
oldest unacknowledged events still in force, each as a SET signed now for this
receiver. With ``returnImmediately`` false and nothing pending, the request
waits up to SECURITY_EVENTS_LONG_POLL: woken at once by a commit in this process
or (Redis) in any other, and re-reading every SECURITY_EVENTS_RECHECK otherwise.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import request

from .. import state
from ..core import security_events
from ..core.clients import authenticate_client
from ..core.secevent_tokens import event_uid, set_claims, sign_set
from ..errors import Forbidden, ServiceUnavailable, Unauthorized
from ..extensions import db
from ..metrics import metrics
from ..models import SecurityEvent, ServiceClient
from ..security import snapshot
from . import bell

__all__ = ["Poll", "authenticated_receiver", "poll", "stream_configuration"]

log = logging.getLogger(__name__)

SCOPE = "events"
DELIVERY_METHOD = "urn:ietf:rfc:8936"
_BASIC = {"WWW-Authenticate": 'Basic realm="tessera-events"'}


@dataclass(frozen=True)
class Poll:
    """One poll request, as loaded by ``schemas.PollSchema``."""

    max_events: int | None
    return_immediately: bool
    ack: list[str]
    set_errs: dict[str, dict[str, str]]


def authenticated_receiver() -> str:
    """The client id of the service client authenticating this request (HTTP Basic,
    RFC 6749 §2.3.1) with the ``events`` scope; 401 or 403 otherwise."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username or auth.password is None:
        raise Unauthorized("Client credentials are required (HTTP Basic).", headers=_BASIC)
    row = db.session.get(ServiceClient, auth.username)
    if row is None or not authenticate_client(row, auth.password, state.now()):
        raise Unauthorized("The client credentials are wrong.", headers=_BASIC)
    if SCOPE not in row.scopes:
        raise Forbidden(f"This client lacks the scope {SCOPE}.", details={"scope": SCOPE})
    return row.client_id


def _acknowledge(client_id: str, body: Poll) -> None:
    now = state.now()
    counters = metrics().events_acknowledged
    acked = security_events.acknowledge(
        db.session, client_id, _uids(client_id, body.ack), now)
    failed = 0
    for jti, err in body.set_errs.items():  # each with its own code, kept on its row
        uid = event_uid(jti, client_id)
        if uid is not None:
            failed += security_events.acknowledge(db.session, client_id, [uid], now,
                                                  error=err["err"])
            log.warning("security events: receiver %s could not process %s (%s)",
                        client_id, jti, err["err"])
    if body.ack or body.set_errs:  # re-acks too: time may have settled what was acked
        security_events.advance(db.session, client_id, now)
    db.session.commit()
    counters.labels("ack").inc(acked)
    counters.labels("error").inc(failed)


def _uids(client_id: str, jtis: list[str]) -> list[str]:
    return [uid for uid in (event_uid(jti, client_id) for jti in jtis) if uid is not None]


def _wait_for_events(client_id: str, limit: int, wait: bool) -> list[SecurityEvent]:
    """Up to ``limit + 1`` pending events (one more tells ``moreAvailable``)."""
    s = state.settings()
    ring = bell()
    deadline = time.monotonic() + s.security_events_long_poll.total_seconds()
    recheck = s.security_events_recheck.total_seconds()
    while True:
        seen = ring.generation  # before the read: a commit after it ends the wait at once
        found = security_events.pending(db.session, client_id, state.now(), limit + 1)
        remaining = deadline - time.monotonic()
        if found or not wait or remaining <= 0:
            return found
        # End the read transaction while waiting: SQLite's snapshot would hide new rows,
        # and the pool's connection is not held by an idle receiver.
        db.session.rollback()
        ring.wait(seen, min(recheck, remaining))


def poll(client_id: str, body: Poll) -> dict[str, Any]:
    """Acknowledge, then the RFC 8936 answer: ``{"sets": {jti: SET}, "moreAvailable"}``."""
    _acknowledge(client_id, body)
    s = state.settings()
    limit = min(s.security_events_max_batch,
                body.max_events if body.max_events is not None else s.security_events_max_batch)
    if limit == 0:
        return {"sets": {}, "moreAvailable": bool(security_events.pending(
            db.session, client_id, state.now(), 1))}
    found = _wait_for_events(client_id, limit, wait=not body.return_immediately)
    signer = snapshot().signer
    if found and signer is None:
        raise ServiceUnavailable("No asymmetric signing key is active.")
    sets: dict[str, str] = {}
    for row in found[:limit]:
        claims = set_claims(row, issuer=s.issuer, audience=client_id)
        assert signer is not None
        sets[claims["jti"]] = sign_set(signer, claims)
    metrics().events_delivered.inc(len(sets))
    return {"sets": sets, "moreAvailable": len(found) > limit}


def _base() -> str:
    return state.settings().issuer.rstrip("/")


def stream_configuration(client_id: str) -> dict[str, Any]:
    """The receiver's stream (SSF §8.1.1), kept to what Tessera does: one stream per
    client, every event type, delivered by polling."""
    return {
        "stream_id": client_id,
        "iss": state.settings().issuer,
        "aud": client_id,
        "events_supported": list(security_events.EVENT_TYPES),
        "events_requested": list(security_events.EVENT_TYPES),
        "events_delivered": list(security_events.EVENT_TYPES),
        "delivery": {"method": DELIVERY_METHOD, "endpoint_url": f"{_base()}/ssf/poll"},
        "description": "Every revocation Tessera makes (tokens, sessions, users, keys).",
    }


def transmitter_metadata() -> dict[str, Any]:
    """``/.well-known/ssf-configuration`` (SSF §7.1)."""
    base = _base()
    return {
        "spec_version": "1_0",
        "issuer": state.settings().issuer,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "delivery_methods_supported": [DELIVERY_METHOD],
        "configuration_endpoint": f"{base}/ssf/stream",
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        "default_subjects": "ALL",
    }
