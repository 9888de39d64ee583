"""Issuing and verifying access tokens (SPEC §3), with a reason code per failure.

Verification runs the steps of SPEC §3 in order: size and strict compact
form (a header, or an HS256 payload, nested deeper than MAX_JSON_DEPTH is
malformed; so is anything deeper than ``json`` can recurse); ``alg`` on the allow-list and equal to the one algorithm of the key the
``kid`` names (keys only from our own keyring; ``jku``/``x5u``/``jwk``/``x5c``
ignored; unknown ``crit`` refused); one keyring reload for an unknown kid;
the signature; then ``typ``, ``iss``, ``aud``, ``exp``, ``nbf``, ``iat`` and the
types of the required claims. Revocation (step 6) is the caller's next step.

Signing and the keys are joserfc's. On the verify path, for speed, three small
parts are ours instead of a joserfc call per token: the strict base64url decoding
(``_decode_segment``, the same rules as joserfc's decoder), the JSON reading (the
standard library's C scanner with duplicate names and NaN refused) and, in
``keyring``, the ES256 r||s to DER step before cryptography's ECDSA verify. The
README's Decisions give the figures; tests/security/test_against_the_libraries.py
holds each part against the library it stands in for.
"""

from __future__ import annotations

import binascii
import hashlib
import itertools
import json
import math
import re
import secrets
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from joserfc import jws

from .ids import user_id_from_subject
from .json_depth import MAX_JSON_DEPTH, nesting_exceeds
from .keyring import (
    Keyring,
    KeyringSnapshot,
    SigningMaterial,
    VerificationKey,
    signing_registry,
)

__all__ = [
    "ACCESS_PROFILE",
    "ACCESS_TOKEN_TYPE",
    "TokenProfile",
    "TokenPolicy",
    "TokenRejected",
    "VerifiedToken",
    "VerifiedTokenCache",
    "access_claims",
    "check_times",
    "sign_token",
    "verify_token",
]

ACCESS_TOKEN_TYPE = "at+jwt"
_TYP_ACCEPTED = frozenset({"at+jwt", "application/at+jwt"})
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NUMBER = (int, float)
# NumericDates (exp, nbf, iat, auth_time) must lie within ±2**53 s, about 285 million
# years: no clock reaches beyond, and within it every JSON number becomes a float
# without overflow (10**400 does not; 1e400 reads as inf). NaN compares false: refused.
_FAR = 2.0**53
# The types json gives values, bool left out: a bool is never a claim's number or string.
_JSON_TYPES = (str, int, float, list, dict, type(None))
_IS_STR = str.__instancecheck__  # isinstance(v, str), callable by map() without a Python frame

# Claim -> required JSON type, for Tessera's own tokens (SPEC §3).
_REQUIRED_CLAIMS: dict[str, type | tuple[type, ...]] = {
    "iss": str, "aud": (str, list), "sub": str, "exp": _NUMBER, "nbf": _NUMBER,
    "iat": _NUMBER, "jti": str, "client_id": str, "sid": str, "scope": str,
    "roles": list, "auth_time": _NUMBER, "amr": list, "acr": str,
}


class TokenRejected(Exception):
    """Verification failed; ``reason`` is the internal code for logs and metrics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenProfile:
    """What kind of token is expected: its ``typ`` values, claims and audience."""

    types: frozenset[str]
    required: dict[str, type | tuple[type, ...]]
    audience: str | None = None  # None: the policy's access-token audience
    allow_legacy: bool = True
    # Derived from ``required`` for _check_types' fast path (not compared, not shown).
    claim_values: Callable[[dict[str, Any]], tuple[Any, ...]] = field(
        init=False, repr=False, compare=False)
    claim_shapes: frozenset[tuple[type, ...]] = field(init=False, repr=False, compare=False)
    string_lists: tuple[str, ...] = field(init=False, repr=False, compare=False)  # lists of str

    def __post_init__(self) -> None:
        names = tuple(self.required)
        getter = itemgetter(*names) if len(names) > 1 else (lambda c: tuple(c[n] for n in names))
        object.__setattr__(self, "claim_values", getter)
        object.__setattr__(self, "claim_shapes", _accepted_shapes(self.required))
        object.__setattr__(self, "string_lists", tuple(n for n in ("roles", "amr") if n in self.required))


def _accepted_shapes(required: dict[str, Any]) -> frozenset[tuple[type, ...]]:
    """Every tuple of exact JSON types, one per required claim, that the full check accepts.

    ``type(v)`` in a kind's set implies ``isinstance(v, kind)`` and not bool, so a claim
    set whose types form one of these shapes passes _first_bad_claim. Empty when too many.
    """
    kinds = [frozenset(t for t in _JSON_TYPES if issubclass(t, kind)) for kind in required.values()]
    if math.prod(map(len, kinds)) > 4096:
        return frozenset()
    return frozenset(itertools.product(*kinds))


ACCESS_PROFILE = TokenProfile(_TYP_ACCEPTED, _REQUIRED_CLAIMS)


@dataclass(frozen=True)
class TokenPolicy:
    """What a token must satisfy, read from the settings once per app."""

    issuer: str
    audience: str
    leeway: int
    max_bytes: int
    legacy_accept_until: datetime | None = None
    legacy_max_lifetime: int = 30 * 86400  # seconds an HS256 token may still live (its exp)
    legacy_subject_claim: str = "sub"
    legacy_issuer: str | None = None
    legacy_audience: str | None = None

    def legacy_allowed_at(self, now: float) -> bool:
        """Whether LEGACY_ACCEPT_UNTIL still lets HS256 tokens in at ``now``."""
        until = self.legacy_accept_until
        return until is None or now < until.timestamp()


@dataclass(slots=True)
class VerifiedToken:
    """A token whose signature and static claims passed; time checks still run per use.

    Treat as read-only; not frozen only because frozen dataclasses are slow to build.
    """

    claims: dict[str, Any]
    kid: str
    alg: str
    legacy: bool  # HS256: signed with a legacy secret; its principal comes from the database
    old_system: bool  # passed the old system's claim rules (SPEC §4), not Tessera's own form
    subject: str
    jti: str | None
    sid: str | None
    iat: int | None
    exp: float
    nbf: float | None
    token_hash: str | None  # SHA-256 of a legacy token without jti (its revocation handle)
    # What the caller derived from the claims, kept with the cached token (opaque here).
    derived: Any = None
    revocation_query: Any = None


def sign_token(
    signer: SigningMaterial, claims: dict[str, Any], typ: str = ACCESS_TOKEN_TYPE
) -> str:
    """Sign ``claims`` as a JWS compact token with the signer's one algorithm (ES256: the
    low-S signature, the only one verification accepts)."""
    header = {"alg": signer.alg, "kid": signer.kid, "typ": typ}
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return jws.serialize_compact(header, payload, signer.key,
                                 registry=signing_registry(signer.alg))


# --- step 1: size and strict compact form


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise TokenRejected("malformed")
    return result


# base64url -> base64 for binascii; "+", "/" and "=" become "!", which strict mode refuses,
# so one C pass checks the alphabet [A-Za-z0-9_-] (no padding) and decodes.
_FROM_URLSAFE = bytes.maketrans(b"-_+/=", b"+/!!!")
_PADDING = (b"", b"=", b"==")  # by -len % 4; 3 is never a valid length
# Last character allowed when 2 or 1 "=" would pad: unused low bits must be zero (canonical).
_CANONICAL_LAST = (b"", b"AEIMQUYcgkosw048", b"AQgw")


def _decode_segment(segment: bytes) -> bytes:
    """Strict base64url: non-empty, no padding, canonical ending (as joserfc's decoder)."""
    pad = -len(segment) % 4
    if not segment or pad == 3 or (pad and segment[-1] not in _CANONICAL_LAST[pad]):
        raise TokenRejected("malformed")
    try:
        return binascii.a2b_base64(segment.translate(_FROM_URLSAFE) + _PADDING[pad], strict_mode=True)
    except binascii.Error:
        raise TokenRejected("malformed") from None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # RFC 8259 §6; Python's json reads it


_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_not_json)
# The C scanner decode() wraps; typeshed leaves this documented-in-source attribute out.
_SCAN_JSON: Callable[[str, int], tuple[Any, int]] = _STRICT_JSON.scan_once  # type: ignore[attr-defined]


def _json_object(segment: bytes, max_depth: int | None = None) -> dict[str, Any]:
    """A segment's JSON object; deeper than ``max_depth`` (when given) is malformed too."""
    try:
        text = _decode_segment(segment).decode("utf-8")
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


def _split(token: str | bytes, max_bytes: int) -> tuple[bytes, bytes, bytes]:
    raw = token.encode("ascii", "replace") if isinstance(token, str) else token
    if len(raw) > max_bytes:
        raise TokenRejected("too_large")
    parts = raw.split(b".")
    if len(parts) != 3:
        raise TokenRejected("malformed")
    return parts[0], parts[1], parts[2]


# --- steps 2-4: algorithm, key, kid


def _check_header(
    header: dict[str, Any], snapshot: KeyringSnapshot, policy: TokenPolicy, now: float
) -> None:
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenRejected("malformed")
    if alg.lower() == "none":
        raise TokenRejected("alg_none")
    if alg not in ("ES256", "RS256", "HS256"):
        raise TokenRejected("alg_not_allowed")
    if alg == "HS256" and (snapshot.phase == "asymmetric" or not policy.legacy_allowed_at(now)):
        raise TokenRejected("legacy_disabled")
    if "crit" in header:  # we implement no extension, so every critical one is unknown
        raise TokenRejected("crit_unsupported")


def _find_key(
    header: dict[str, Any], snapshot: KeyringSnapshot, keyring: Keyring | None
) -> tuple[KeyringSnapshot, VerificationKey | None]:
    kid = header.get("kid")
    if kid is None:
        if header["alg"] != "HS256":
            raise TokenRejected("missing_kid")
        return snapshot, None  # a legacy token may lack kid: try each legacy secret
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise TokenRejected("bad_kid")
    key = snapshot.keys.get(kid)
    if key is None and header["alg"] == "HS256" and not _known_dead(kid, snapshot):
        # The old system's own kid names none of our keys: only the legacy secrets can
        # verify an HS256 token, so try them (no reload: they come from the settings).
        # A kid of ours is never skipped this way: HS256 naming an EC key is alg_mismatch.
        return snapshot, None
    if key is None and keyring is not None and not _known_dead(kid, snapshot):
        snapshot = keyring.reload_for_unknown_kid()
        key = snapshot.keys.get(kid)
    if key is None:
        if kid in snapshot.revoked_kids:
            raise TokenRejected("key_revoked")
        raise TokenRejected("key_expired" if kid in snapshot.expired_kids else "unknown_kid")
    if key.alg != header["alg"]:
        raise TokenRejected("alg_mismatch")
    return snapshot, key


def _known_dead(kid: str, snapshot: KeyringSnapshot) -> bool:
    return kid in snapshot.revoked_kids or kid in snapshot.expired_kids


# --- step 5: signature, then claims


def _check_signature(
    key: VerificationKey | None, snapshot: KeyringSnapshot, signing_input: bytes, sig: bytes
) -> VerificationKey:
    if key is not None:  # the kid named it: that key alone
        if key.verify(signing_input, sig):
            return key
        raise TokenRejected("bad_signature")
    for candidate in snapshot.legacy_keys:
        if candidate.verify(signing_input, sig):
            return candidate
    raise TokenRejected("bad_signature")


def _check_types(claims: dict[str, Any], profile: TokenProfile) -> None:
    if not _types_pass_fast(claims, profile):
        _first_bad_claim(claims, profile.required)  # decides, and names the first failure's reason
    for name in profile.string_lists:
        if not all(map(_IS_STR, claims[name])):
            raise TokenRejected("bad_claim_type")


def _types_pass_fast(claims: dict[str, Any], profile: TokenProfile) -> bool:
    """Every required claim present with its types an accepted shape: one set lookup.

    True implies _first_bad_claim passes (see _accepted_shapes); False (a missing
    claim, or a shape not listed) leaves the verdict to _first_bad_claim.
    """
    try:
        return tuple(map(type, profile.claim_values(claims))) in profile.claim_shapes
    except KeyError:
        return False


def _first_bad_claim(claims: dict[str, Any], required: dict[str, Any]) -> None:
    for name, kind in required.items():
        if name not in claims:
            raise TokenRejected("missing_claim")
        value = claims[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise TokenRejected("bad_claim_type")


def _check_audience(aud: Any, expected: str) -> None:
    if isinstance(aud, str):
        ok = aud == expected
    else:
        ok = isinstance(aud, list) and all(isinstance(a, str) for a in aud) and expected in aud
    if not ok:
        raise TokenRejected("bad_audience")


def _check_typ(header: dict[str, Any], profile: TokenProfile) -> None:
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in profile.types:
        raise TokenRejected("bad_typ")


def _check_claims(claims: dict[str, Any], policy: TokenPolicy, profile: TokenProfile) -> None:
    _check_types(claims, profile)
    if user_id_from_subject(claims["sub"]) is None:  # every profile's sub names a user
        raise TokenRejected("bad_claim_type")
    if "auth_time" in profile.required and not -_FAR < claims["auth_time"] < _FAR:
        raise TokenRejected("bad_claim_type")
    if claims["iss"] != policy.issuer:
        raise TokenRejected("bad_issuer")
    _check_audience(claims["aud"], profile.audience or policy.audience)


def _check_legacy_claims(claims: dict[str, Any], policy: TokenPolicy) -> str:
    """The old system's claims (SPEC §4): ``exp`` always; ``iss``/``aud`` when configured."""
    subject = claims.get(policy.legacy_subject_claim)
    if "exp" not in claims or subject is None:
        raise TokenRejected("missing_claim")
    if not isinstance(subject, (str, int)) or isinstance(subject, bool):
        raise TokenRejected("bad_claim_type")
    for name in ("exp", "nbf", "iat"):
        if name in claims and (not isinstance(claims[name], _NUMBER) or isinstance(claims[name], bool)):
            raise TokenRejected("bad_claim_type")
    if "jti" in claims and not isinstance(claims["jti"], str):
        raise TokenRejected("bad_claim_type")
    if policy.legacy_issuer is not None and claims.get("iss") != policy.legacy_issuer:
        raise TokenRejected("bad_issuer")
    if policy.legacy_audience is not None:
        _check_audience(claims.get("aud"), policy.legacy_audience)
    return str(subject)


def check_times(token: VerifiedToken, now: float, leeway: int) -> None:
    """The claims that depend on the clock: run on every use, cached or not."""
    if now >= token.exp + leeway:
        raise TokenRejected("expired")
    if token.nbf is not None and now + leeway < token.nbf:
        raise TokenRejected("not_yet_valid")
    if token.iat is not None and token.iat > now + leeway:
        raise TokenRejected("issued_in_future")


class _HeaderCache:
    """Header segments of verified tokens and the key each resolved to, per snapshot.

    Every token one key signs shares its header segment. The header checks
    (steps 2-4 and ``typ``) depend only on those bytes, the snapshot and the
    profile, so a segment that passed under this very snapshot and profile
    needs neither parsing nor checking again. Only asymmetric keys are kept:
    whether HS256 is accepted also depends on the clock. Only headers of tokens
    that verified are stored, and the store is small and bounded, so forged
    headers cannot grow it. The snapshot is held weakly: an old one (with the
    private key of a key since revoked) must not outlive the keyring's use of it.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self._entries: dict[
            bytes, tuple[weakref.ref[KeyringSnapshot], TokenProfile, VerificationKey]] = {}
        self._max = max_entries

    def resolved(self, segment: bytes, snapshot: KeyringSnapshot,
                 profile: TokenProfile) -> VerificationKey | None:
        """The key this segment named when it last passed, if under these very objects."""
        entry = self._entries.get(segment)
        if entry is None or entry[0]() is not snapshot or entry[1] is not profile:
            return None
        return entry[2]

    def remember(self, segment: bytes, snapshot: KeyringSnapshot, profile: TokenProfile,
                 key: VerificationKey) -> None:
        if key.legacy:
            return
        if segment not in self._entries and len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[segment] = (weakref.ref(snapshot), profile, key)


def _verify_uncached(
    token: str | bytes, snapshot: KeyringSnapshot, keyring: Keyring | None, policy: TokenPolicy,
    now: float, headers: _HeaderCache | None, profile: TokenProfile,
) -> VerifiedToken:
    head, body, sig_segment = _split(token, policy.max_bytes)
    key = headers.resolved(head, snapshot, profile) if headers is not None else None
    if key is not None:  # steps 2-4 and typ passed for these very bytes under this snapshot
        claims = _json_object(body)
        if not key.verify(head + b"." + body, _decode_segment(sig_segment)):
            raise TokenRejected("bad_signature")
        _check_claims(claims, policy, profile)
        return _verified(token, key, claims, claims["sub"], old_system=False)
    header = _json_object(head, MAX_JSON_DEPTH)
    _check_header(header, snapshot, policy, now)
    snapshot, key = _find_key(header, snapshot, keyring)
    # Whoever holds a legacy secret signs what they like: an HS256 payload gets the depth
    # limit too. Tessera's own keys sign no deep payload, and a forged one fails the
    # signature (cold, or through the header cache, alike) at no cost per token.
    claims = _json_object(body, MAX_JSON_DEPTH if header["alg"] == "HS256" else None)
    signature = _decode_segment(sig_segment)
    key = _check_signature(key, snapshot, head + b"." + body, signature)
    if key.legacy and not profile.allow_legacy:
        raise TokenRejected("alg_mismatch")
    old_system = key.legacy and str(header.get("typ", "")).lower() not in profile.types
    if old_system:
        subject = _check_legacy_claims(claims, policy)
    else:
        _check_typ(header, profile)
        _check_claims(claims, policy, profile)
        subject = claims["sub"]
    verified = _verified(token, key, claims, subject, old_system=old_system)
    if headers is not None:
        headers.remember(head, snapshot, profile, key)
    return verified


def _verified(
    token: str | bytes, key: VerificationKey, claims: dict[str, Any], subject: str, *,
    old_system: bool,
) -> VerifiedToken:
    jti = claims.get("jti")
    sid = claims.get("sid")
    exp, nbf, iat = claims["exp"], claims.get("nbf"), claims.get("iat")  # numbers: checked
    if not (-_FAR < exp < _FAR and (nbf is None or -_FAR < nbf < _FAR)
            and (iat is None or -_FAR < iat < _FAR)):
        raise TokenRejected("bad_claim_type")
    token_hash = None
    if not jti:  # a legacy token without jti is revoked by its hash (SPEC §4)
        token_hash = hashlib.sha256(token.encode() if isinstance(token, str) else token).hexdigest()
    # Positional, in field order: keywords made this call a third slower (hot path).
    return VerifiedToken(
        claims,  # claims
        key.kid,  # kid
        key.alg,  # alg
        key.legacy,  # legacy
        old_system,  # old_system
        subject,  # subject
        jti,  # jti
        sid if isinstance(sid, str) else None,  # sid
        int(iat) if iat is not None else None,  # iat
        float(exp),  # exp
        float(nbf) if nbf is not None else None,  # nbf
        token_hash,  # token_hash
    )


class VerifiedTokenCache:
    """Tokens whose signature this process already checked (SPEC §10).

    Keyed by the exact token text; bounded (the oldest entry goes first: it expires soonest);
    an entry is dropped at its ``exp`` and whenever its key is no longer in the
    keyring (revoked, expired) or its phase no longer accepts it.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self._entries: OrderedDict[str, VerifiedToken] = OrderedDict()
        self._max = max_entries
        self.headers = _HeaderCache()

    def get(self, token: str, snapshot: KeyringSnapshot) -> VerifiedToken | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        key = snapshot.keys.get(entry.kid)
        if key is None or key.alg != entry.alg or (entry.legacy and snapshot.phase == "asymmetric"):
            self._entries.pop(token, None)
            return None
        return entry

    def put(self, token: str, verified: VerifiedToken) -> None:
        self._entries[token] = verified
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def drop(self, token: str) -> None:
        self._entries.pop(token, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def verify_token(
    token: str,
    snapshot: KeyringSnapshot,
    policy: TokenPolicy,
    now: float,
    *,
    keyring: Keyring | None = None,
    cache: VerifiedTokenCache | None = None,
    profile: TokenProfile = ACCESS_PROFILE,
) -> VerifiedToken:
    """Verify ``token`` (SPEC §3 steps 1-5) or raise TokenRejected with the reason.

    ``cache`` must only ever see one ``profile`` (the app keeps one for access tokens).
    """
    verified = cache.get(token, snapshot) if cache is not None else None
    if verified is None:
        headers = cache.headers if cache is not None else None
        verified = _verify_uncached(token, snapshot, keyring, policy, now, headers, profile)
        if cache is not None:
            cache.put(token, verified)
    if verified.legacy:
        reason = _legacy_refusal(verified, policy, now)
        if reason is not None:
            if cache is not None:
                cache.drop(token)
            raise TokenRejected(reason)
    try:
        check_times(verified, now, policy.leeway)
    except TokenRejected:
        if cache is not None:
            cache.drop(token)
        raise
    return verified


def _legacy_refusal(verified: VerifiedToken, policy: TokenPolicy, now: float) -> str | None:
    """Why an HS256 token cannot be used at ``now``, if it cannot (checked on every use).

    Past LEGACY_ACCEPT_UNTIL none is. One whose ``exp`` lies further than
    LEGACY_MAX_LIFETIME ahead is refused too: every revocation that cannot see a
    token's ``exp`` (an admin's jti, a user cutoff) lasts that long, so no accepted
    legacy token can outlive the revocation that names it.
    """
    if not policy.legacy_allowed_at(now):
        return "legacy_disabled"
    if verified.exp > now + policy.legacy_max_lifetime:
        return "lifetime_too_long"
    return None


def now_seconds(clock: Callable[[], datetime] | None = None) -> float:
    """Seconds since the epoch by ``clock`` (or the system clock)."""
    return clock().timestamp() if clock is not None else time.time()


def access_claims(
    *,
    issuer: str,
    audience: str,
    user_id: int,
    session_id: str,
    client_id: str,
    scope: str,
    roles: list[str],
    auth_time: int,
    amr: list[str],
    acr: str,
    now: int,
    ttl: int,
) -> dict[str, Any]:
    """The claim set of a Tessera access token (SPEC §3), with a fresh random ``jti``."""
    return {
        "iss": issuer,
        "aud": audience,
        "sub": str(user_id),
        "exp": now + ttl,
        "nbf": now,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "client_id": client_id,
        "sid": session_id,
        "scope": scope,
        "roles": roles,
        "auth_time": auth_time,
        "amr": amr,
        "acr": acr,
    }
