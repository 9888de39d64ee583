"""The Security Event Tokens (RFC 8417) a receiver is sent, built from stored events.

A SET is signed at delivery with the active asymmetric key (the JWKS publishes
it), ``typ: secevent+jwt`` (RFC 8417 §2.3), and carries ``iss``, ``aud`` (the
receiving client's id), ``jti``, ``iat`` (when the revocation was made, the same
on every redelivery), ``sub_id`` (the Shared Signals subject) and one event in
``events``. Each event's payload holds ``event_timestamp`` (for a user's cutoff:
the second from which its tokens are refused), ``reason_admin`` and Tessera's
``revocation_expires_at``: after it nothing the event revokes can still be valid,
so a receiver may forget it.

The ``jti`` is the event's id joined to a tag of the receiver's client id, so
that a SET is unique per receiver (RFC 8417 §2.2) and an acknowledgement names
its event without a table of sent SETs.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..models import SecurityEvent
from .keyring import SigningMaterial
from .security_events import CREDENTIAL_CHANGE
from .tokens import sign_token

__all__ = ["SET_TYPE", "event_uid", "set_claims", "set_jti", "sign_set"]

SET_TYPE = "secevent+jwt"
_USER_KINDS = frozenset({"user", "legacyuser"})


def _tag(client_id: str) -> str:
    return hashlib.sha256(client_id.encode()).hexdigest()[:8]


def set_jti(uid: str, client_id: str) -> str:
    """The ``jti`` of the SET that carries event ``uid`` to ``client_id``."""
    return f"{uid}-{_tag(client_id)}"


def event_uid(jti: str, client_id: str) -> str | None:
    """The event a SET ``jti`` sent to ``client_id`` names; None if it is not one of
    this client's (another receiver's jti, or made up)."""
    uid, _, tag = jti.partition("-")
    return uid if tag and tag == _tag(client_id) and len(uid) == 32 else None


def _subject(event: SecurityEvent, issuer: str) -> dict[str, Any]:
    """The Shared Signals subject identifier (RFC 9493 formats, SSF ``jwt_id``/``complex``)."""
    if event.kind == "jti":
        return {"format": "jwt_id", "iss": issuer, "jti": event.value}
    if event.kind == "sid":
        return {"format": "complex", "session": {"format": "opaque", "id": event.value}}
    if event.kind in _USER_KINDS:
        return {"format": "iss_sub", "iss": issuer, "sub": event.value}
    return {"format": "opaque", "id": event.value}  # tokenhash, kid


def _payload(event: SecurityEvent) -> dict[str, Any]:
    when = event.not_before if event.not_before is not None else event.created_at
    payload: dict[str, Any] = {
        "event_timestamp": int(when.timestamp()),
        "revocation_expires_at": int(event.expires_at.timestamp()),
        "reason_admin": {"en": event.reason or "revoked"},
    }
    if event.event_type == CREDENTIAL_CHANGE:  # CAEP requires both members
        payload["credential_type"] = "app" if event.reason == "mfa_reset" else "password"
        payload["change_type"] = "delete" if event.reason == "mfa_reset" else "update"
    if event.kind == "tokenhash":
        payload["token_sha256"] = event.value
    if event.kind == "kid":
        payload["kid"] = event.value
    return payload


def set_claims(event: SecurityEvent, *, issuer: str, audience: str) -> dict[str, Any]:
    """The claims of the SET carrying ``event`` to the receiver ``audience``."""
    return {
        "iss": issuer,
        "aud": audience,
        "jti": set_jti(event.uid, audience),
        "iat": int(event.created_at.timestamp()),
        "sub_id": _subject(event, issuer),
        "events": {event.event_type: _payload(event)},
    }


def sign_set(signer: SigningMaterial, claims: dict[str, Any]) -> str:
    """Sign a SET with the active asymmetric key."""
    return sign_token(signer, claims, typ=SET_TYPE)
