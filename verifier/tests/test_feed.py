"""The revocation feed's parts that need no Tessera: the denylist's rules, its saved
state, and a feed that has not caught up refusing every token."""

from __future__ import annotations

from pathlib import Path

import pytest
from tessera_verifier.denylist import Denylist
from tessera_verifier.feed import UNAVAILABLE, RevocationFeed

CUTOFF = 1_800_000_000


def _denylist() -> Denylist:
    denylist = Denylist(clock=lambda: CUTOFF + 10)
    for kind, value in (("kid", "k-dead"), ("jti", "j-dead"), ("sid", "s-dead")):
        denylist.add(kind, value, until=CUTOFF + 900)
    denylist.add("user", "7", until=CUTOFF + 900, cutoff=CUTOFF)
    denylist.add("legacyuser", "8", until=CUTOFF + 900, cutoff=CUTOFF)
    return denylist


@pytest.mark.parametrize(("claims", "header", "reason"), [
    ({"jti": "j", "sid": "s", "sub": "1", "iat": CUTOFF}, {"kid": "k-dead"}, "key_revoked"),
    ({"jti": "j-dead", "sub": "1", "iat": CUTOFF}, {"kid": "k"}, "token_revoked"),
    ({"jti": "j", "sid": "s-dead", "sub": "1", "iat": CUTOFF}, {"kid": "k"}, "session_revoked"),
    ({"jti": "j", "sid": "s", "sub": "7", "iat": CUTOFF - 1}, {"kid": "k"}, "user_revoked"),
    # the cutoff's own second: a token with a live session passes, one without is refused
    ({"jti": "j", "sid": "s", "sub": "7", "iat": CUTOFF}, {"kid": "k"}, None),
    ({"jti": "j", "sub": "7", "iat": CUTOFF}, {"kid": "k"}, "user_revoked"),
    ({"jti": "j", "sid": "s", "sub": "7"}, {"kid": "k"}, "user_revoked"),  # no iat
    ({"jti": "j", "sid": "s", "sub": "7", "iat": CUTOFF + 1}, {"kid": "k"}, None),
    ({"sub": "8", "iat": CUTOFF}, {"alg": "HS256"}, "legacy_cutoff"),
    ({"sub": "8", "iat": CUTOFF}, {"alg": "ES256", "kid": "k"}, None),  # HS256 only
])
def test_the_denylist_applies_tesseras_rules(claims, header, reason) -> None:  # type: ignore[no-untyped-def]
    assert _denylist().check(claims, header) == reason


def test_a_legacy_token_without_jti_is_named_by_its_hash() -> None:
    import hashlib
    denylist = Denylist(clock=lambda: CUTOFF)
    denylist.add("tokenhash", hashlib.sha256(b"a.b.c").hexdigest(), until=CUTOFF + 60)
    assert denylist.check({"sub": "1", "iat": 1}, {"alg": "HS256"}, "a.b.c") == "token_revoked"
    assert denylist.check({"sub": "1", "iat": 1}, {"alg": "HS256"}, "a.b.d") is None


def test_saved_state_comes_back_and_expired_entries_go(tmp_path: Path) -> None:
    now = [float(CUTOFF)]
    _denylist().save(tmp_path / "state.json")
    restored = Denylist(clock=lambda: now[0])
    assert restored.load(tmp_path / "state.json") == 5
    assert restored.check({"jti": "j-dead"}, {}) == "token_revoked"
    now[0] = CUTOFF + 901
    assert restored.check({"jti": "j-dead"}, {}) is None
    assert restored.prune() == 5 and len(restored) == 0


def test_a_feed_that_has_not_caught_up_refuses_every_token(tmp_path: Path) -> None:
    feed = RevocationFeed("https://auth.example", "svc", "secret",
                          poll_url="http://127.0.0.1:9/ssf/poll",
                          state_path=tmp_path / "state.json")
    assert not feed.ready() and feed.stale()
    assert feed.check({"jti": "j", "sub": "1", "iat": 1}, {"kid": "k"}) == "feed_not_ready"
    assert "feed_not_ready" in UNAVAILABLE
    with pytest.raises(ValueError, match="introspector"):
        RevocationFeed("https://auth.example", "svc", "secret", stale_policy="introspect")
