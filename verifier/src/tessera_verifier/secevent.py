"""Verify one of Tessera's Security Event Tokens (RFC 8417) and read its revocation.

A SET passes only as Tessera signs them: compact JWS (checked by the package's own
strict JOSE steps, ``jose`` and ``keys``), ``typ: secevent+jwt``,
ES256 or RS256 with a key of Tessera's JWKS (the header's ``kid``; ``jku``,
``jwk``, ``x5u`` are never followed), ``iss`` the issuer, ``aud`` this receiver,
string ``jti``, integer ``iat`` not in the future, and exactly one event in
``events``. The event then names one denylist entry, keyed as Tessera keys it
(``app/core/secevent_tokens.py`` on Tessera's side):

=======================================  ============================  ==========
event type                               ``sub_id``                    entry
=======================================  ============================  ==========
``urn:tessera:secevent:token-revoked``   ``jwt_id`` / ``opaque`` hash  jti / tokenhash
CAEP ``session-revoked``                 ``complex`` with ``session``  sid
CAEP ``session-revoked``,                ``iss_sub``                   user cutoff
``credential-change``, RISC
``account-disabled``
``urn:tessera:secevent:legacy-tokens-revoked``  ``iss_sub``            legacyuser cutoff
``urn:tessera:secevent:key-revoked``     ``opaque`` kid                kid
=======================================  ============================  ==========
"""

from __future__ import annotations

from typing import Any

from .errors import TokenRejected
from .jose import decode_segment, json_object, split_compact
from .jwks import JwksCache
from .keys import Key, key_from_jwk

__all__ = ["SET_TYPE", "SetRejected", "verify_set"]

SET_TYPE = "secevent+jwt"
_CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
_USER_TYPES = frozenset({_CAEP + "session-revoked", _CAEP + "credential-change",
                         "https://schemas.openid.net/secevent/risc/event-type/account-disabled"})
_LEEWAY = 30
_MAX_BYTES = 16384


class SetRejected(Exception):
    """A SET that is not Tessera's, or not for this receiver; ``err`` as RFC 8936 §2.4.4."""

    def __init__(self, reason: str, err: str = "invalid_request") -> None:
        super().__init__(reason)
        self.reason, self.err = reason, err


def _key(jwks: JwksCache, kid: Any) -> Key:
    """The key ``kid`` names in the JWKS: a cache of public JWKs, or of the core's keys
    (the :class:`~tessera_verifier.verifier.Verifier`'s own cache, shared)."""
    found = jwks.get(kid) if isinstance(kid, str) else None
    if isinstance(found, Key):
        return found
    if isinstance(found, dict):
        try:
            return key_from_jwk(found)
        except (ValueError, TypeError):
            raise SetRejected("unusable_key", "invalid_key") from None
    raise SetRejected("unknown_kid", "invalid_key")


def _claims(token: str, jwks: JwksCache) -> dict[str, Any]:
    """The strict compact form and signature, by the verifier's own JOSE steps."""
    try:
        header_segment, payload_segment, signature = split_compact(token, _MAX_BYTES)
        header = json_object(header_segment)
        if header.get("typ") != SET_TYPE:
            raise SetRejected("wrong_typ")
        if header.get("alg") not in ("ES256", "RS256") or "crit" in header:
            raise SetRejected("alg_not_allowed")
        key = _key(jwks, header.get("kid"))
        if key.alg != header["alg"]:
            raise SetRejected("alg_mismatch", "invalid_key")
        if not key.verify(header_segment + b"." + payload_segment, decode_segment(signature)):
            raise SetRejected("bad_signature", "invalid_key")
        return json_object(payload_segment)
    except TokenRejected as exc:
        raise SetRejected(exc.reason) from None


def _entry(claims: dict[str, Any], issuer: str) -> tuple[str, str, float, int]:
    """(kind, value, until, cutoff) of the one event."""
    ((event_type, payload),) = claims["events"].items()
    sub = claims.get("sub_id")
    if not isinstance(payload, dict) or not isinstance(sub, dict):
        raise SetRejected("bad_event")
    until, when = payload.get("revocation_expires_at"), payload.get("event_timestamp")
    if not isinstance(until, int) or not isinstance(when, int):
        raise SetRejected("bad_event")
    fmt = sub.get("format")
    if fmt == "iss_sub" and sub.get("iss") == issuer and isinstance(sub.get("sub"), str):
        if event_type in _USER_TYPES:
            return "user", sub["sub"], until, when
        if event_type == "urn:tessera:secevent:legacy-tokens-revoked":
            return "legacyuser", sub["sub"], until, when
    session = sub.get("session")
    if event_type == _CAEP + "session-revoked" and fmt == "complex" \
            and isinstance(session, dict) and isinstance(session.get("id"), str):
        return "sid", session["id"], until, 0
    if event_type == "urn:tessera:secevent:token-revoked":
        if fmt == "jwt_id" and sub.get("iss") == issuer and isinstance(sub.get("jti"), str):
            return "jti", sub["jti"], until, 0
        if fmt == "opaque" and isinstance(sub.get("id"), str):
            return "tokenhash", sub["id"], until, 0
    if event_type == "urn:tessera:secevent:key-revoked" and fmt == "opaque" \
            and isinstance(sub.get("id"), str):
        return "kid", sub["id"], until, 0
    raise SetRejected("unknown_event")


def verify_set(token: str, jwks: JwksCache, *, issuer: str, audience: str,
               now: float) -> tuple[tuple[str, str, float, int], int]:
    """The denylist entry ``(kind, value, until, cutoff)`` a SET carries, and its ``iat``;
    :class:`SetRejected` if it does not pass."""
    claims = _claims(token, jwks)
    aud = claims.get("aud")
    if claims.get("iss") != issuer:
        raise SetRejected("wrong_issuer")
    if aud != audience and not (isinstance(aud, list) and audience in aud):
        raise SetRejected("wrong_audience")
    iat = claims.get("iat")
    if not isinstance(claims.get("jti"), str) or not isinstance(iat, int) or iat > now + _LEEWAY:
        raise SetRejected("bad_claims")
    events = claims.get("events")
    if not isinstance(events, dict) or len(events) != 1:
        raise SetRejected("bad_event")
    return _entry(claims, issuer), iat
