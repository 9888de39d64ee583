"""The revocation rules shared by every store (SPEC §6): keys, queries and verdicts.

A check asks about a token's ``kid``, ``jti`` (or a legacy token's hash),
``sid`` and user; each store (Redis, the per-process mirror of the database,
the database itself) answers with the revocations it found, and ``verdict``
applies the same rules to all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, TextualSelect, bindparam, text

from ..models.base import UTCDateTime

__all__ = [
    "EPOCH_KEY",
    "KINDS",
    "PREFIX",
    "REBUILD_LOCK",
    "RevocationQuery",
    "StoreUnavailable",
    "db_lookup",
    "epoch_of",
    "micros",
    "parse_value",
    "redis_key",
    "verdict",
]

PREFIX = "tessera:rev:"
EPOCH_KEY = PREFIX + "epoch"
REBUILD_LOCK = PREFIX + "rebuild"
_REDIS_KIND = {"jti": "jti", "sid": "sid", "tokenhash": "th", "user": "user", "kid": "kid",
               "legacyuser": "lu"}
KINDS = frozenset(_REDIS_KIND)
_REASONS = {"jti": "token_revoked", "tokenhash": "token_revoked", "sid": "session_revoked",
            "user": "user_revoked", "kid": "key_revoked", "legacyuser": "legacy_cutoff"}
# Kinds whose value is a cutoff: tokens issued before it are refused, later ones pass.
_CUTOFF_KINDS = frozenset({"user", "legacyuser"})


class StoreUnavailable(Exception):
    """Revocation state cannot be read and the fail mode is ``closed``."""


def redis_key(kind: str, value: str) -> str:
    """The Redis key of one revocation."""
    return f"{PREFIX}{_REDIS_KIND[kind]}:{value}"


def micros(when: datetime) -> int:
    """``when`` in microseconds since the epoch (how cutoffs are compared)."""
    return int(when.timestamp() * 1_000_000)


@dataclass(frozen=True)
class RevocationQuery:
    """What one token's check asks about: built once, reusable for every request
    that presents the token (its facts never change)."""

    pairs: tuple[tuple[str, str], ...]  # (kind, value)
    iat: int | None
    has_sid: bool
    keys: tuple[str, ...]  # the MGET keys: the epoch marker, then one per pair
    # The key of the token's own jti (never a legacy token's: its jti and iat are the old
    # system's), born with the token at ``iat``: no revocation of it can predate that.
    born_key: str | None = None

    @classmethod
    def of(cls, *, jti: str | None, sid: str | None, user_id: int | None, iat: int | None,
           token_hash: str | None, kid: str | None = None,
           legacy: bool = False) -> RevocationQuery:
        """The query of one token. A ``legacy`` (HS256) token's ``sid`` may only get it
        refused: it does not vouch for the token within a cutoff's second, and the
        user's legacy cutoff (a password change) applies to it as well."""
        pairs: list[tuple[str, str]] = []
        if kid:
            pairs.append(("kid", kid))
        if jti:
            pairs.append(("jti", jti))
        if token_hash:
            pairs.append(("tokenhash", token_hash))
        if sid:
            pairs.append(("sid", sid))
        if user_id is not None:
            pairs.append(("user", str(user_id)))
            if legacy:
                pairs.append(("legacyuser", str(user_id)))
        keys = (EPOCH_KEY, *(redis_key(kind, value) for kind, value in pairs))
        born = redis_key("jti", jti) if jti and iat is not None and not legacy else None
        return cls(tuple(pairs), iat, bool(sid) and not legacy, keys, born)


def epoch_of(raw: Any) -> bytes | None:
    """The epoch key's value as MGET (bytes) or the Redis mirror returns it."""
    return raw.encode() if isinstance(raw, str) else raw


@functools.lru_cache(maxsize=64)
def db_lookup(kinds: tuple[str, ...]) -> TextualSelect:
    """One indexed query for a shape of lookup (which kinds), built once per shape.

    Building the equivalent ORM expression per request cost more than the query.
    The (kind, value) unique index serves each OR branch.
    """
    if not set(kinds) <= KINDS:  # only our own constants reach the SQL text
        raise ValueError(f"unknown revocation kind in {kinds}")
    branches = " OR ".join(f"(kind = '{kind}' AND value = :v{i})" for i, kind in enumerate(kinds))
    return (
        text(f"SELECT kind, not_before FROM revocations WHERE ({branches}) AND expires_at > :now")
        .bindparams(bindparam("now", type_=UTCDateTime()))
        .columns(kind=String(), not_before=UTCDateTime())
    )


def parse_value(raw: Any) -> int:
    """A Redis value as a cutoff in microseconds (1: a plain revocation)."""
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 1


def verdict(lookup: RevocationQuery, hits: Iterable[tuple[str, int]]) -> str | None:
    """Apply the rules to what the store found (values: cutoff microseconds for users)."""
    for kind, value in hits:
        if kind not in _CUTOFF_KINDS:
            return _REASONS[kind]
        if _before_cutoff(lookup, value):
            return _REASONS[kind]
    return None


def _before_cutoff(lookup: RevocationQuery, cutoff_micros: int) -> bool:
    """Revoke-all exact at the boundary (SPEC §6), with ``iat`` in whole seconds.

    A token with a ``sid`` from the cutoff's own second is decided by its
    session (revoke-all revoked every session that existed), so a login in the
    same second after the revocation passes. A token without ``sid`` cannot be
    told apart within that second and is refused, as is one without ``iat``.
    """
    cutoff_second = cutoff_micros // 1_000_000
    if lookup.iat is None:
        return True
    if lookup.has_sid:
        return lookup.iat < cutoff_second
    return lookup.iat <= cutoff_second
