"""Strict JWS compact form (RFC 7515 §7.1) and the header's alg, crit and kid (SPEC §3 steps 1-4).

Step 1 is stricter than RFC 7515 asks, on purpose: three segments of canonical
base64url without padding or whitespace (the same rules as joserfc's decoder,
plus a non-empty signature), header and payload JSON objects without duplicate
member names or NaN/Infinity, a size cap, and a nesting limit on the header
(and on an HS256 payload, whose signer may be anyone holding the shared secret).

For speed the decoding is the standard library's (binascii in strict mode, the
json C scanner) rather than a joserfc call per token; tests hold it against
joserfc on random and mutated input.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable
from typing import Any

from .depth import nesting_exceeds
from .errors import TokenRejected
from .keys import KeySet, KeySource, VerifyingKey

__all__ = ["check_header", "decode_segment", "find_key", "json_object", "split_compact",
           "verify_signature"]

_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def split_compact(token: str | bytes, max_bytes: int) -> tuple[bytes, bytes, bytes]:
    """The three segments of a compact JWS no longer than ``max_bytes`` (``too_large``)."""
    raw = token.encode("ascii", "replace") if isinstance(token, str) else token
    if len(raw) > max_bytes:
        raise TokenRejected("too_large")
    parts = raw.split(b".")
    if len(parts) != 3:
        raise TokenRejected("malformed")
    return parts[0], parts[1], parts[2]


# base64url -> base64 for binascii; "+", "/" and "=" become "!", which strict mode refuses,
# so one C pass checks the alphabet [A-Za-z0-9_-] (no padding) and decodes.
_FROM_URLSAFE = bytes.maketrans(b"-_+/=", b"+/!!!")
_PADDING = (b"", b"=", b"==")  # by -len % 4; 3 is never a valid length
# Last character allowed when 2 or 1 "=" would pad: unused low bits must be zero (canonical).
_CANONICAL_LAST = (b"", b"AEIMQUYcgkosw048", b"AQgw")


def decode_segment(segment: bytes) -> bytes:
    """Strict base64url: non-empty, no padding, canonical ending (as joserfc's decoder)."""
    pad = -len(segment) % 4
    if not segment or pad == 3 or (pad and segment[-1] not in _CANONICAL_LAST[pad]):
        raise TokenRejected("malformed")
    try:
        return binascii.a2b_base64(segment.translate(_FROM_URLSAFE) + _PADDING[pad],
                                   strict_mode=True)
    except binascii.Error:
        raise TokenRejected("malformed") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise TokenRejected("malformed")
    return result


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # RFC 8259 §6; Python's json reads it


_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_not_json)
# The C scanner decode() wraps: documented in CPython's json/decoder.py, left out by typeshed.
_SCAN_JSON: Callable[[str, int], tuple[Any, int]] = getattr(_STRICT_JSON, "scan_once")  # noqa: B009


def json_object(segment: bytes, max_depth: int | None = None) -> dict[str, Any]:
    """A segment's JSON object; deeper than ``max_depth`` (when given) is malformed too."""
    try:
        text = decode_segment(segment).decode("utf-8")
        # _STRICT_JSON.decode(text) minus its Python layers: the C scanner's value, when it
        # starts at 0 and spans the whole text, is exactly decode()'s (no whitespace to
        # skip), and its errors are decode()'s; anything else goes through decode() itself.
        try:
            value, end = _SCAN_JSON(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):
            value = _STRICT_JSON.decode(text)
    except (ValueError, RecursionError):  # json recurses per level: very deep is malformed
        raise TokenRejected("malformed") from None
    if not isinstance(value, dict) or (max_depth is not None and nesting_exceeds(text, max_depth)):
        raise TokenRejected("malformed")
    return value


def check_header(header: dict[str, Any], keys: KeySet, legacy_allowed: bool) -> None:
    """Step 2-3: ``alg`` a string on the allow-list, HS256 only while allowed, no ``crit``."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenRejected("malformed")
    if alg.lower() == "none":
        raise TokenRejected("alg_none")
    if alg not in ("ES256", "RS256", "HS256"):
        raise TokenRejected("alg_not_allowed")
    if alg == "HS256" and not (keys.accepts_hs256 and legacy_allowed):
        raise TokenRejected("legacy_disabled")
    if "crit" in header:  # we implement no extension, so every critical one is unknown
        raise TokenRejected("crit_unsupported")


def _known_dead(kid: str, keys: KeySet) -> bool:
    return kid in keys.revoked_kids or kid in keys.expired_kids


def find_key(header: dict[str, Any], keys: KeySet,
             source: KeySource | None) -> tuple[KeySet, VerifyingKey | None]:
    """Step 4: the key the ``kid`` names (None: try the legacy secrets), and the key set
    it was found in (a fresh one from ``source`` after an unknown kid).

    ``jku``, ``x5u``, ``jwk`` and ``x5c`` are never read: keys come from ``keys`` only.
    """
    kid = header.get("kid")
    if kid is None:
        if header["alg"] != "HS256":
            raise TokenRejected("missing_kid")
        return keys, None  # a legacy token may lack kid: try each legacy secret
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise TokenRejected("bad_kid")
    key = keys.keys.get(kid)
    if key is None and header["alg"] == "HS256" and not _known_dead(kid, keys):
        # The old system's own kid names none of our keys: only the legacy secrets can
        # verify an HS256 token, so try them (no reload: they come from the settings).
        # A kid of ours is never skipped this way: HS256 naming an EC key is alg_mismatch.
        return keys, None
    if key is None and source is not None and not _known_dead(kid, keys):
        keys = source.reload_for_unknown_kid()
        key = keys.keys.get(kid)
    if key is None:
        if kid in keys.revoked_kids:
            raise TokenRejected("key_revoked")
        raise TokenRejected("key_expired" if kid in keys.expired_kids else "unknown_kid")
    if key.alg != header["alg"]:
        raise TokenRejected("alg_mismatch")
    return keys, key


def verify_signature(key: VerifyingKey | None, keys: KeySet, signing_input: bytes,
                     signature: bytes) -> VerifyingKey:
    """Step 5's signature: by the named key alone, else by one of the legacy secrets."""
    if key is not None:
        if key.verify(signing_input, signature):
            return key
        raise TokenRejected("bad_signature")
    for candidate in keys.legacy_keys:
        if candidate.verify(signing_input, signature):
            return candidate
    raise TokenRejected("bad_signature")
