"""Claim rules (SPEC §3 step 5, §4): what a token's claims must be, the clock passed in.

Time is one type throughout: float seconds since the epoch (``now``, ``exp``,
``nbf``, ``iat``, ``legacy_accept_until``), the JWT NumericDate itself.

A :class:`TokenProfile` says what kind of token is expected (its ``typ``
values, required claims with their JSON types, audience); a
:class:`TokenPolicy` holds the issuer's settings (issuer, audience, leeway,
size cap and the old system's rules for HS256 tokens).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from .errors import TokenRejected

__all__ = [
    "ACCESS_PROFILE",
    "ACCESS_TOKEN_TYPES",
    "FAR",
    "MAX_INTEGER_ID",
    "TokenPolicy",
    "TokenProfile",
    "check_claims",
    "check_legacy_claims",
    "check_typ",
    "user_id_from_subject",
]

ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 §2.1
NUMBER = (int, float)
# NumericDates must lie within ±2**53 s, about 285 million years: no clock reaches
# beyond, and within it every JSON number becomes a float without overflow (10**400
# does not; 1e400 reads as inf). NaN compares false: refused.
FAR = 2.0**53
# The types json gives values, bool left out: a bool is never a claim's number or string.
_JSON_TYPES = (str, int, float, list, dict, type(None))
_IS_STR = str.__instancecheck__  # isinstance(v, str), callable by map() without a Python frame
MAX_INTEGER_ID = 2**31 - 1  # integer ids are 32-bit on PostgreSQL
_MAX_DIGITS = len(str(MAX_INTEGER_ID))

# Claim -> required JSON type, for Tessera's access tokens (SPEC §3).
_ACCESS_CLAIMS: dict[str, type | tuple[type, ...]] = {
    "iss": str, "aud": (str, list), "sub": str, "exp": NUMBER, "nbf": NUMBER,
    "iat": NUMBER, "jti": str, "client_id": str, "sid": str, "scope": str,
    "roles": list, "auth_time": NUMBER, "amr": list, "acr": str,
}


def user_id_from_subject(subject: object, *, leading_zeros: bool = False) -> int | None:
    """The user id ``subject`` names, or None unless it is one as Tessera writes it.

    That is ASCII decimal digits, 1..MAX_INTEGER_ID, without a leading zero
    unless ``leading_zeros`` (the old system may have padded its ids):
    ``str.isdigit`` alone also admits "²" (which ``int`` refuses) and "１"
    (which ``int`` reads as 1).
    """
    if not isinstance(subject, str) or not subject.isascii() or not subject.isdigit():
        return None
    if leading_zeros:
        subject = subject.lstrip("0")
    if not 0 < len(subject) <= _MAX_DIGITS or subject[0] == "0":
        return None
    user_id = int(subject)
    return user_id if user_id <= MAX_INTEGER_ID else None


def _accepted_shapes(required: dict[str, Any]) -> frozenset[tuple[type, ...]]:
    """Every tuple of exact JSON types, one per required claim, that the full check accepts.

    ``type(v)`` in a kind's set implies ``isinstance(v, kind)`` and not bool, so a claim
    set whose types form one of these shapes passes _first_bad_claim. Empty when too many.
    """
    kinds = [frozenset(t for t in _JSON_TYPES if issubclass(t, kind)) for kind in required.values()]
    if math.prod(map(len, kinds)) > 4096:
        return frozenset()
    return frozenset(itertools.product(*kinds))


@dataclass(frozen=True)
class TokenProfile:
    """What kind of token is expected: its ``typ`` values, claims and audience.

    Every profile's ``sub`` must name a user id (:func:`user_id_from_subject`).
    """

    types: frozenset[str]
    required: dict[str, type | tuple[type, ...]]
    audience: str | None = None  # None: the policy's access-token audience
    allow_legacy: bool = True
    # Derived from ``required`` for check_types' fast path (not compared, not shown).
    claim_values: Callable[[dict[str, Any]], tuple[Any, ...]] = field(
        init=False, repr=False, compare=False)
    claim_shapes: frozenset[tuple[type, ...]] = field(init=False, repr=False, compare=False)
    string_lists: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(self.required)
        getter = itemgetter(*names) if len(names) > 1 else (lambda c: tuple(c[n] for n in names))
        object.__setattr__(self, "claim_values", getter)
        object.__setattr__(self, "claim_shapes", _accepted_shapes(self.required))
        object.__setattr__(self, "string_lists",
                           tuple(n for n in ("roles", "amr") if n in self.required))


ACCESS_PROFILE = TokenProfile(ACCESS_TOKEN_TYPES, _ACCESS_CLAIMS)


@dataclass(frozen=True)
class TokenPolicy:
    """What a token must satisfy, read from the issuer's settings once."""

    issuer: str
    audience: str
    leeway: float
    max_bytes: int
    legacy_accept_until: float | None = None  # epoch seconds: HS256 refused from then on
    legacy_max_lifetime: float = 30 * 86400  # seconds an HS256 token may still live (its exp)
    legacy_subject_claim: str = "sub"
    legacy_issuer: str | None = None
    legacy_audience: str | None = None

    def legacy_allowed_at(self, now: float) -> bool:
        """Whether LEGACY_ACCEPT_UNTIL still lets HS256 tokens in at ``now``."""
        until = self.legacy_accept_until
        return until is None or now < until


def _types_pass_fast(claims: dict[str, Any], profile: TokenProfile) -> bool:
    """Every required claim present with its types an accepted shape: one set lookup."""
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


def _check_types(claims: dict[str, Any], profile: TokenProfile) -> None:
    if not _types_pass_fast(claims, profile):
        _first_bad_claim(claims, profile.required)  # decides, and names the first failure
    for name in profile.string_lists:
        if not all(map(_IS_STR, claims[name])):
            raise TokenRejected("bad_claim_type")


def _check_audience(aud: Any, expected: str) -> None:
    if isinstance(aud, str):
        ok = aud == expected
    else:
        ok = isinstance(aud, list) and all(isinstance(a, str) for a in aud) and expected in aud
    if not ok:
        raise TokenRejected("bad_audience")


def check_typ(header: dict[str, Any], profile: TokenProfile) -> None:
    """The header's ``typ`` is one of the profile's (case-insensitive, RFC 7515 §4.1.9)."""
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in profile.types:
        raise TokenRejected("bad_typ")


def check_claims(claims: dict[str, Any], policy: TokenPolicy, profile: TokenProfile) -> None:
    """Required claims and their types, ``sub`` a user id, then ``iss`` and ``aud``."""
    _check_types(claims, profile)
    if user_id_from_subject(claims["sub"]) is None:
        raise TokenRejected("bad_claim_type")
    if "auth_time" in profile.required and not -FAR < claims["auth_time"] < FAR:
        raise TokenRejected("bad_claim_type")
    if claims["iss"] != policy.issuer:
        raise TokenRejected("bad_issuer")
    _check_audience(claims["aud"], profile.audience or policy.audience)


def check_legacy_claims(claims: dict[str, Any], policy: TokenPolicy) -> str:
    """The old system's claims (SPEC §4): ``exp`` always; ``iss``/``aud`` when configured.

    Returns the subject, as text.
    """
    subject = claims.get(policy.legacy_subject_claim)
    if "exp" not in claims or subject is None:
        raise TokenRejected("missing_claim")
    if not isinstance(subject, (str, int)) or isinstance(subject, bool):
        raise TokenRejected("bad_claim_type")
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if name in claims and (not isinstance(value, NUMBER) or isinstance(value, bool)):
            raise TokenRejected("bad_claim_type")
    if "jti" in claims and not isinstance(claims["jti"], str):
        raise TokenRejected("bad_claim_type")
    if policy.legacy_issuer is not None and claims.get("iss") != policy.legacy_issuer:
        raise TokenRejected("bad_issuer")
    if policy.legacy_audience is not None:
        _check_audience(claims.get("aud"), policy.legacy_audience)
    return str(subject)
