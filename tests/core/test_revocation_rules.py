"""app/core/revocation_rules without a store: the query of a token, keys and verdicts (SPEC §6)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.core.revocation_rules import (
    EPOCH_KEY,
    RevocationQuery,
    db_lookup,
    micros,
    parse_value,
    redis_key,
    verdict,
)
from tests.support.databases import NOW

CUTOFF = micros(NOW) + 250_000  # a quarter second into NOW's second
SECOND = int(NOW.timestamp())


def _query(*, iat: int | None = SECOND, sid: str | None = "s1", legacy: bool = False,
           user_id: int | None = 7) -> RevocationQuery:
    return RevocationQuery.of(jti="j1", sid=sid, user_id=user_id, iat=iat, token_hash=None,
                              kid="k1", legacy=legacy)


def test_the_query_asks_about_every_fact_of_the_token() -> None:
    query = RevocationQuery.of(jti="j1", sid="s1", user_id=7, iat=SECOND, token_hash="h1",
                               kid="k1", legacy=True)
    assert query.pairs == (("kid", "k1"), ("jti", "j1"), ("tokenhash", "h1"), ("sid", "s1"),
                           ("user", "7"), ("legacyuser", "7"))
    assert query.keys[0] == EPOCH_KEY
    assert query.keys[1:] == tuple(redis_key(kind, value) for kind, value in query.pairs)
    assert not query.has_sid  # a legacy token's sid never vouches for it
    assert RevocationQuery.of(jti=None, sid=None, user_id=None, iat=None,
                              token_hash=None).pairs == ()


def test_redis_keys_are_distinct_per_kind() -> None:
    keys = {redis_key(kind, "1") for kind in ("jti", "sid", "tokenhash", "user", "kid",
                                              "legacyuser")}
    assert len(keys) == 6 and all(key.startswith("tessera:rev:") for key in keys)
    with pytest.raises(KeyError):
        redis_key("nonsense", "1")


@pytest.mark.parametrize(("kind", "reason"), [
    ("jti", "token_revoked"), ("tokenhash", "token_revoked"), ("sid", "session_revoked"),
    ("kid", "key_revoked"),
])
def test_a_plain_revocation_refuses_whatever_its_value(kind: str, reason: str) -> None:
    assert verdict(_query(), [(kind, 1)]) == reason
    assert verdict(_query(), []) is None


@pytest.mark.parametrize(("iat", "sid", "refused"), [
    (SECOND - 1, "s1", True),  # issued a second before the cutoff
    (SECOND, "s1", False),  # the cutoff's own second: its session decides
    (SECOND, None, True),  # no sid: cannot be told apart within the second
    (SECOND + 1, None, False),  # issued after the cutoff
    (None, "s1", True),  # no iat: refused
])
def test_a_user_cutoff_is_exact_at_the_boundary(iat: int | None, sid: str | None,
                                                refused: bool) -> None:
    found = verdict(_query(iat=iat, sid=sid), [("user", CUTOFF)])
    assert found == ("user_revoked" if refused else None)


def test_a_legacy_token_in_the_cutoffs_second_is_refused_despite_its_sid() -> None:
    assert verdict(_query(legacy=True), [("legacyuser", CUTOFF)]) == "legacy_cutoff"
    assert verdict(_query(legacy=True, iat=SECOND + 1), [("legacyuser", CUTOFF)]) is None


def test_the_first_refusing_hit_decides() -> None:
    hits = [("user", CUTOFF), ("sid", 1)]  # the user cutoff passes this token; the sid not
    assert verdict(_query(), hits) == "session_revoked"


def test_values_and_time_conversions() -> None:
    assert parse_value(b"1765000000000000") == 1765000000000000
    assert parse_value(None) == 1 and parse_value(b"junk") == 1
    assert micros(NOW + timedelta(microseconds=3)) - micros(NOW) == 3


def test_the_lookup_sql_takes_only_known_kinds() -> None:
    assert db_lookup(("jti", "sid")) is db_lookup(("jti", "sid"))  # built once per shape
    with pytest.raises(ValueError, match="unknown revocation kind"):
        db_lookup(("jti", "x' OR '1'='1"))
