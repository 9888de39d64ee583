"""app/core/tokens and token_cache without an app: signing, verify_token through the keyring
adapter, and the verified-token cache (bounds, drops, per-use checks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from app.core.keyring import KeyringSnapshot
from app.core.token_cache import VerifiedTokenCache, entry_bytes
from app.core.tokens import (
    ACCESS_PROFILE,
    TokenRejected,
    VerifiedToken,
    access_claims,
    sign_token,
    verify_cached,
    verify_token,
)
from tests.support.keyrings import (
    AUDIENCE,
    ISSUER,
    LEGACY_SECRET,
    NOW,
    claims,
    key_row,
    policy,
    snapshot_of,
)

T = NOW.timestamp()


Entry = VerifiedToken  # the smallest cache entry: the verified token alone
def _signed(snapshot: KeyringSnapshot, **changes: object) -> str:
    signer = snapshot.current_signer()
    assert signer is not None
    return sign_token(signer, claims(**changes))


def test_access_claims_carry_every_claim_of_spec_3() -> None:
    built = access_claims(issuer=ISSUER, audience=AUDIENCE, user_id=3, session_id="s",
                          client_id="web", scope="a b", roles=["r"], auth_time=10, amr=["pwd"],
                          acr="aal1", now=100, ttl=900)
    assert set(built) == set(ACCESS_PROFILE.required)
    assert (built["sub"], built["exp"], built["nbf"], built["iat"]) == ("3", 1000, 100, 100)
    other = access_claims(**{**{k: built[k] for k in ("scope", "roles", "amr", "acr")},
                             "issuer": ISSUER, "audience": AUDIENCE, "user_id": 3,
                             "session_id": "s", "client_id": "web", "auth_time": 10,
                             "now": 100, "ttl": 900})
    assert other["jti"] != built["jti"]  # random per token


def test_signed_tokens_verify_with_their_facts() -> None:
    snapshot = snapshot_of([key_row("k1")])
    verified = verify_token(_signed(snapshot), snapshot, policy(), T)
    assert (verified.kid, verified.alg, verified.legacy, verified.subject) == (
        "k1", "ES256", False, "7")
    assert verified.exp == T + 900 and verified.iat == int(T)


def test_rs256_keys_sign_and_verify() -> None:
    snapshot = snapshot_of([key_row("r1", alg="RS256")])
    assert verify_token(_signed(snapshot), snapshot, policy(), T).alg == "RS256"


class _Keyring:
    """A key source that answers an unknown kid with a newer snapshot, counting reloads."""

    def __init__(self, first: KeyringSnapshot, second: KeyringSnapshot) -> None:
        self.snapshots, self.reloads = [first, second], 0

    def current(self) -> KeyringSnapshot:
        return self.snapshots[0]

    def reload_for_unknown_kid(self) -> KeyringSnapshot:
        self.reloads += 1
        self.snapshots.pop(0)
        return self.snapshots[0]


def test_an_unknown_kid_reloads_the_keyring_once() -> None:
    old, new = key_row("k1"), key_row("k2")
    ring = _Keyring(snapshot_of([old]), snapshot_of([old, new]))
    token = _signed(snapshot_of([new]))
    assert verify_token(token, ring, policy(), T).kid == "k2"
    assert ring.reloads == 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_phase_and_sunset_refuse_legacy_tokens() -> None:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps({"sub": "a", "exp": int(T) + 60}).encode())
    mac = hmac.new(LEGACY_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    token = f"{head}.{body}.{_b64(mac)}"
    dual = snapshot_of([key_row("k1")], legacy=(LEGACY_SECRET,), phase="dual")
    assert verify_token(token, dual, policy(), T).old_system
    with pytest.raises(TokenRejected, match="^legacy_disabled$"):
        verify_token(token, snapshot_of([key_row("k1")], legacy=(LEGACY_SECRET,)), policy(), T)
    with pytest.raises(TokenRejected, match="^legacy_disabled$"):
        verify_token(token, dual, policy(legacy_accept_until=T), T)


def test_the_cache_serves_a_token_until_its_key_goes() -> None:
    row = key_row("k1")
    snapshot, cache = snapshot_of([row]), VerifiedTokenCache[Entry]()
    token = _signed(snapshot)
    first = verify_cached(token, snapshot, policy(), T, cache, Entry)
    assert verify_cached(token, snapshot, policy(), T + 1, cache, Entry) is first
    row.state = "revoked"
    with pytest.raises(TokenRejected, match="^key_revoked$"):
        verify_cached(token, snapshot_of([row]), policy(), T + 2, cache, Entry)
    assert len(cache) == 0 and cache.bytes == 0


def test_the_cache_checks_the_clock_on_every_use_and_drops_what_fails() -> None:
    snapshot, cache = snapshot_of([key_row("k1")]), VerifiedTokenCache[Entry]()
    token = _signed(snapshot)
    verify_cached(token, snapshot, policy(), T, cache, Entry)
    with pytest.raises(TokenRejected, match="^expired$"):
        verify_cached(token, snapshot, policy(), T + 931, cache, Entry)
    assert len(cache) == 0


def test_refused_tokens_never_enter_the_cache() -> None:
    snapshot, cache = snapshot_of([key_row("k1")]), VerifiedTokenCache[Entry]()
    with pytest.raises(TokenRejected, match="^bad_issuer$"):
        verify_cached(_signed(snapshot, iss="x"), snapshot, policy(), T, cache, Entry)
    assert len(cache) == 0


def test_the_cache_is_bounded_by_entries_and_by_bytes() -> None:
    snapshot = snapshot_of([key_row("k1")])
    tokens = [_signed(snapshot, user_id=i) for i in range(1, 7)]
    by_count = VerifiedTokenCache[Entry](max_entries=3)
    by_bytes = VerifiedTokenCache[Entry](max_bytes=2 * entry_bytes(tokens[0]) + 10)
    for token in tokens:
        verify_cached(token, snapshot, policy(), T, by_count, Entry)
        verify_cached(token, snapshot, policy(), T, by_bytes, Entry)
    assert len(by_count) == 3 and len(by_bytes) == 2
    assert by_bytes.bytes == sum(entry_bytes(t) for t in tokens[-2:]) <= 2 * entry_bytes(
        tokens[0]) + 10
    # The oldest went first: the newest are still served without verifying again.
    newest = by_bytes.get(tokens[-1], snapshot)
    assert newest is not None and by_bytes.get(tokens[0], snapshot) is None
    by_bytes.clear()
    assert len(by_bytes) == 0 and by_bytes.bytes == 0


def test_entry_bytes_grow_with_the_token() -> None:
    assert entry_bytes("x" * 1000) - entry_bytes("x" * 500) == 1500
