"""The stream's service: who polls, what they acknowledge, what they are sent.

A poll (RFC 8936 §2.4) first records the receiver's acknowledgements (``ack``,
and ``setErrs``, which also end redelivery), commits them, then answers with the
oldest unacknowledged events still in force, each as a SET signed now for this
receiver. With ``returnImmediately`` false and nothing pending, the request
waits up to SECURITY_EVENTS_LONG_POLL: woken at once by a commit in this process
or (Redis) in any other, and re-reading every SECURITY_EVENTS_RECHECK otherwise.
Few polls wait at once (``bell.EventBell.hold``: one per receiver, a few per
worker); the others are answered at once, as with ``returnImmediately``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
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
_CODES_LOGGED = 10  # the most frequent error codes named in a poll's setErrs log line


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
    errors: dict[str, str] = {}  # uid: the receiver's code, kept on its row
    codes: Counter[str] = Counter()
    for jti, err in body.set_errs.items():
        uid = event_uid(jti, client_id)
        if uid is not None:
            errors[uid] = err["err"]
            codes[err["err"]] += 1
    # A few statements for the whole list, whatever its length or codes.
    failed = security_events.acknowledge(db.session, client_id, list(errors), now, errors=errors)
    if codes:  # one line per poll: counts by code (repr: a code is the receiver's text)
        shown = dict(codes.most_common(_CODES_LOGGED))
        others = len(codes) - len(shown)
        log.warning("security events: receiver %s could not process %d SETs: %s%s",
                    client_id, codes.total(), shown,
                    f" and {others} other codes" if others else "")
    if body.ack or body.set_errs:  # re-acks too: time may have settled what was acked
        security_events.advance(db.session, client_id, now)
    db.session.commit()
    counters.labels("ack").inc(acked)
    counters.labels("error").inc(failed)


def _uids(client_id: str, jtis: list[str]) -> list[str]:
    return [uid for uid in (event_uid(jti, client_id) for jti in jtis) if uid is not None]


def _wait_for_events(client_id: str, limit: int, wait: bool) -> list[SecurityEvent]:
    """Up to ``limit + 1`` pending events (one more tells ``moreAvailable``). Waits only
    when the bell lets this receiver (``EventBell.hold``), else answers at once."""
    s = state.settings()
    ring = bell()
    deadline = time.monotonic() + s.security_events_long_poll.total_seconds()
    recheck = s.security_events_recheck.total_seconds()
    seen = ring.generation  # before the read: a commit after it ends the wait at once
    # Read once: every event at or below a cursor once read is acknowledged or expired
    # for good (security_events.cursor), so a poll's own later advance, or another's,
    # changes nothing that the cursor's read would find.
    floor = security_events.cursor(db.session, client_id)
    found = security_events.pending(db.session, client_id, state.now(), limit + 1, floor)
    if found or not wait:
        return found
    with ring.hold(client_id) as held:
        while held:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # End the read transaction while waiting: SQLite's snapshot would hide new
            # rows, and the pool's connection is not held by an idle receiver.
            db.session.rollback()
            ring.wait(seen, min(recheck, remaining))
            seen = ring.generation
            found = security_events.pending(db.session, client_id, state.now(), limit + 1,
                                            floor)
            if found:
                break
    return found


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
