"""One token through SPEC §3 steps 1-5: :func:`verify_compact`, and the per-use checks.

Order: size and strict compact form; ``alg`` on the allow-list and equal to the
one algorithm of the key the ``kid`` names (keys from the key set only; one
reload through the :class:`~tessera_verifier.keys.KeySource` for an unknown
kid); the signature; then ``typ``, ``iss``, ``aud``, the claim types, and the
times. Revocation (step 6) is the caller's.

A :class:`VerifiedToken` holds what passed; :func:`check_use` repeats the
checks that depend on the clock, for a caller that keeps verified tokens.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from .claims import (
    ACCESS_PROFILE,
    FAR,
    TokenPolicy,
    TokenProfile,
    check_claims,
    check_legacy_claims,
    check_typ,
)
from .depth import MAX_JSON_DEPTH
from .errors import TokenRejected
from .jose import (
    check_header,
    decode_segment,
    find_key,
    json_object,
    split_compact,
    verify_signature,
)
from .keys import KeySet, KeySource, VerifyingKey

__all__ = ["HeaderCache", "VerifiedToken", "check_times", "check_use", "verify_compact"]


@dataclass(slots=True)
class VerifiedToken:
    """A token whose signature and static claims passed; times still checked per use.

    Times are float epoch seconds (``iat`` an int: the revocation cutoffs compare
    whole seconds). Treat as read-only: not frozen only because frozen
    dataclasses are slow to build, and this one is built per new token.
    """

    claims: dict[str, Any]
    kid: str
    alg: str
    legacy: bool  # HS256: signed with a legacy secret
    old_system: bool  # passed the old system's claim rules (SPEC §4), not the access profile
    subject: str
    jti: str | None
    sid: str | None
    iat: int | None
    exp: float
    nbf: float | None
    token_hash: str | None  # SHA-256 of a token without jti (its revocation handle)


V = TypeVar("V", bound=VerifiedToken)


class HeaderCache:
    """Header segments of verified tokens and the key each resolved to, per key set.

    Every token one key signs shares its header segment. The header checks
    (steps 2-4 and ``typ``) depend only on those bytes, the key set and the
    profile, so a segment that passed under this very key set and profile
    needs neither parsing nor checking again. Only asymmetric keys are kept:
    whether HS256 is accepted also depends on the clock. Only headers of tokens
    that verified are stored, and the store is small and bounded, so forged
    headers cannot grow it. The key set is held weakly: an old one must not
    outlive its owner's use of it.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self._entries: dict[bytes, tuple[weakref.ref[KeySet], TokenProfile, VerifyingKey]] = {}
        self._max = max_entries

    def resolved(self, segment: bytes, keys: KeySet,
                 profile: TokenProfile) -> VerifyingKey | None:
        """The key this segment named when it last passed, if under these very objects."""
        entry = self._entries.get(segment)
        if entry is None or entry[0]() is not keys or entry[1] is not profile:
            return None
        return entry[2]

    def remember(self, segment: bytes, keys: KeySet, profile: TokenProfile,
                 key: VerifyingKey) -> None:
        """Keep a header segment that just passed with ``key`` (asymmetric keys only)."""
        if key.legacy:
            return
        if segment not in self._entries and len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[segment] = (weakref.ref(keys), profile, key)


@overload
def verify_compact(
    token: str | bytes, keys: KeySet, policy: TokenPolicy, now: float, *,
    source: KeySource | None = None, profile: TokenProfile = ACCESS_PROFILE,
    headers: HeaderCache | None = None,
) -> VerifiedToken: ...


@overload
def verify_compact(
    token: str | bytes, keys: KeySet, policy: TokenPolicy, now: float, *,
    source: KeySource | None = None, profile: TokenProfile = ACCESS_PROFILE,
    headers: HeaderCache | None = None, result: type[V],
) -> V: ...


def verify_compact(
    token: str | bytes, keys: KeySet, policy: TokenPolicy, now: float, *,
    source: KeySource | None = None, profile: TokenProfile = ACCESS_PROFILE,
    headers: HeaderCache | None = None, result: type[VerifiedToken] = VerifiedToken,
) -> VerifiedToken:
    """Verify ``token`` (SPEC §3 steps 1-5) or raise TokenRejected with the reason.

    ``source``, when given, is asked once for a fresh key set when the ``kid`` is
    unknown to ``keys``. ``headers`` skips the header steps for a segment that
    passed before under the same key set and profile. ``result`` is the class
    built, :class:`VerifiedToken` or a subclass of the caller's (a cache keeping
    more beside each token, in the same object).
    """
    verified = _verify_signed(token, keys, policy, now, source, profile, headers, result)
    check_use(verified, policy, now)
    return verified


def _verify_signed(
    token: str | bytes, keys: KeySet, policy: TokenPolicy, now: float,
    source: KeySource | None, profile: TokenProfile, headers: HeaderCache | None,
    result: type[V],
) -> V:
    head, body, sig_segment = split_compact(token, policy.max_bytes)
    key = headers.resolved(head, keys, profile) if headers is not None else None
    if key is not None:  # steps 2-4 and typ passed for these very bytes under these keys
        claims = json_object(body)
        if not key.verify(head + b"." + body, decode_segment(sig_segment)):
            raise TokenRejected("bad_signature")
        check_claims(claims, policy, profile)
        return _verified(result, token, key, claims, claims["sub"], old_system=False)
    header = json_object(head, MAX_JSON_DEPTH)
    check_header(header, keys, policy.legacy_allowed_at(now))
    keys, key = find_key(header, keys, source)
    # Whoever holds a legacy secret signs what they like: an HS256 payload gets the depth
    # limit too. The asymmetric keys sign no deep payload, and a forged one fails the
    # signature (cold, or through the header cache, alike) at no cost per token.
    claims = json_object(body, MAX_JSON_DEPTH if header["alg"] == "HS256" else None)
    key = verify_signature(key, keys, head + b"." + body, decode_segment(sig_segment))
    if key.legacy and not profile.allow_legacy:
        raise TokenRejected("alg_mismatch")
    old_system = key.legacy and str(header.get("typ", "")).lower() not in profile.types
    if old_system:
        subject = check_legacy_claims(claims, policy)
    else:
        check_typ(header, profile)
        check_claims(claims, policy, profile)
        subject = claims["sub"]
    verified = _verified(result, token, key, claims, subject, old_system=old_system)
    if headers is not None:
        headers.remember(head, keys, profile, key)
    return verified


def _verified(
    result: type[V], token: str | bytes, key: VerifyingKey, claims: dict[str, Any],
    subject: str, *, old_system: bool,
) -> V:
    jti = claims.get("jti")
    sid = claims.get("sid")
    exp, nbf, iat = claims["exp"], claims.get("nbf"), claims.get("iat")  # numbers: checked
    if not (-FAR < exp < FAR and (nbf is None or -FAR < nbf < FAR)
            and (iat is None or -FAR < iat < FAR)):
        raise TokenRejected("bad_claim_type")
    token_hash = None
    if not jti:  # a legacy token without jti is revoked by its hash (SPEC §4)
        token_hash = hashlib.sha256(token.encode() if isinstance(token, str) else token).hexdigest()
    # Positional, in field order: keywords made this call a third slower (hot path).
    return result(
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


def check_times(token: VerifiedToken, now: float, leeway: float) -> None:
    """The claims that depend on the clock: ``exp``, ``nbf``, ``iat`` with the leeway."""
    if now >= token.exp + leeway:
        raise TokenRejected("expired")
    if token.nbf is not None and now + leeway < token.nbf:
        raise TokenRejected("not_yet_valid")
    if token.iat is not None and token.iat > now + leeway:
        raise TokenRejected("issued_in_future")


def _legacy_refusal(token: VerifiedToken, policy: TokenPolicy, now: float) -> str | None:
    """Why an HS256 token cannot be used at ``now``, if it cannot.

    Past LEGACY_ACCEPT_UNTIL none is. One whose ``exp`` lies further than
    LEGACY_MAX_LIFETIME ahead is refused too: every revocation that cannot see a
    token's ``exp`` (an admin's jti, a user cutoff) lasts that long, so no accepted
    legacy token can outlive the revocation that names it.
    """
    if not policy.legacy_allowed_at(now):
        return "legacy_disabled"
    if token.exp > now + policy.legacy_max_lifetime:
        return "lifetime_too_long"
    return None


def check_use(token: VerifiedToken, policy: TokenPolicy, now: float) -> None:
    """Everything that depends on the clock, on every use: the legacy sunset, then times."""
    if token.legacy:
        reason = _legacy_refusal(token, policy, now)
        if reason is not None:
            raise TokenRejected(reason)
    check_times(token, now, policy.leeway)
