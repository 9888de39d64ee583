"""SPEC §3 steps 2-5 through verify_compact, with hand-made tokens and a static key set."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import NOW, SECRET, World, access_claims, b64, es256, hs256
from cryptography.hazmat.primitives.asymmetric import ec
from tessera_verifier import (
    ACCESS_PROFILE,
    HeaderCache,
    Key,
    StaticKeySet,
    TokenPolicy,
    TokenProfile,
    TokenRejected,
    verify_compact,
)
from tessera_verifier.keys import P256_ORDER

ES = {"alg": "ES256", "kid": "k1", "typ": "at+jwt"}


def _reason(world: World, token: str, keys: StaticKeySet | None = None, *,
            now: float = NOW, policy: TokenPolicy | None = None) -> str | None:
    try:
        verify_compact(token, keys or world.keys(), policy or world.policy, now)
    except TokenRejected as exc:
        return exc.reason
    return None


def test_a_valid_token_verifies_with_its_facts(world: World) -> None:
    verified = verify_compact(world.token(), world.keys(), world.policy, NOW)
    assert (verified.kid, verified.alg, verified.legacy, verified.subject) == (
        "k1", "ES256", False, "42")
    assert (verified.jti, verified.sid, verified.iat, verified.exp) == (
        "j-1", "s-1", int(NOW), NOW + 900)
    assert verified.token_hash is None and not verified.old_system


@pytest.mark.parametrize(("header", "reason"), [
    ({"alg": "none", "kid": "k1", "typ": "at+jwt"}, "alg_none"),
    ({"alg": "NoNe", "kid": "k1", "typ": "at+jwt"}, "alg_none"),
    ({"alg": "ES384", "kid": "k1", "typ": "at+jwt"}, "alg_not_allowed"),
    ({"alg": 1, "kid": "k1", "typ": "at+jwt"}, "malformed"),
    ({"kid": "k1", "typ": "at+jwt"}, "malformed"),
    ({**ES, "crit": ["exp"]}, "crit_unsupported"),
    ({"alg": "ES256", "typ": "at+jwt"}, "missing_kid"),
    ({**ES, "kid": "no/slash"}, "bad_kid"),
    ({**ES, "kid": 7}, "bad_kid"),
    ({**ES, "kid": "k2"}, "unknown_kid"),
    ({**ES, "kid": "gone"}, "key_revoked"),
    ({**ES, "kid": "old"}, "key_expired"),
    ({**ES, "alg": "RS256"}, "alg_mismatch"),
    ({**ES, "typ": "JWT"}, "bad_typ"),
    ({"alg": "ES256", "kid": "k1"}, "bad_typ"),
])
def test_header_refusals(world: World, header: dict[str, Any], reason: str) -> None:
    keys = world.keys(revoked={"gone"}, expired={"old"})
    assert _reason(world, world.token(header=header), keys) == reason


def test_attacker_key_headers_are_ignored(world: World) -> None:
    """jku, x5u, jwk, x5c never pick the key: the attacker's own signature fails."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    header = {**ES, "jku": "https://evil.example/jwks", "jwk": {"kty": "EC"}, "x5u": "x",
              "x5c": ["x"]}
    assert _reason(world, world.token(header=header)) is None  # ignored, our key signed
    forged = world.token(header=header, sign=lambda data: es256(attacker, data))
    assert _reason(world, forged) == "bad_signature"


def test_hs256_keyed_with_the_ec_key_is_alg_mismatch(world: World) -> None:
    """The public key is never an HMAC secret: HS256 naming an EC kid is refused first."""
    token = world.token(header={"alg": "HS256", "kid": "k1", "typ": "at+jwt"},
                        sign=lambda data: hs256(b"public key bytes", data))
    assert _reason(world, token) == "alg_mismatch"


def test_high_s_twin_and_bad_lengths_are_bad_signatures(world: World) -> None:
    token = world.token()
    head, body, sig = token.split(".")
    import base64
    raw = base64.urlsafe_b64decode(sig + "==")
    high = raw[:32] + (P256_ORDER - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")
    for bad in (high, raw[:63], raw + b"\0", bytes(64)):
        assert _reason(world, f"{head}.{body}.{b64(bad)}") == "bad_signature"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"sub": None}, "missing_claim"),
    ({"jti": None}, "missing_claim"),
    ({"exp": "soon"}, "bad_claim_type"),
    ({"exp": True}, "bad_claim_type"),
    ({"roles": "admin"}, "bad_claim_type"),
    ({"roles": [1]}, "bad_claim_type"),
    ({"amr": ["pwd", None]}, "bad_claim_type"),
    ({"sub": "042"}, "bad_claim_type"),
    ({"sub": "\u00b2"}, "bad_claim_type"),
    ({"sub": str(2**31)}, "bad_claim_type"),
    ({"exp": 1e300}, "bad_claim_type"),
    ({"auth_time": 2.0**60}, "bad_claim_type"),
    ({"iss": "https://other.example"}, "bad_issuer"),
    ({"aud": "https://other.example"}, "bad_audience"),
    ({"aud": ["x", 1, "https://auth.example/api"]}, "bad_audience"),
    ({"aud": ["x", "https://auth.example/api"]}, None),
    ({"exp": int(NOW) - 31}, "expired"),
    ({"exp": int(NOW) - 29}, None),
    ({"nbf": int(NOW) + 31}, "not_yet_valid"),
    ({"nbf": int(NOW) + 30}, None),
    ({"iat": int(NOW) + 31}, "issued_in_future"),
])
def test_claim_rules(world: World, changes: dict[str, Any], reason: str | None) -> None:
    assert _reason(world, world.token(access_claims(**changes))) == reason


def test_size_cap(world: World) -> None:
    token = world.token(access_claims(scope="x" * 9000))
    assert _reason(world, token) == "too_large"


def test_old_system_hs256_tokens_follow_the_legacy_rules(world: World) -> None:
    token = world.legacy_token({"sub": "alice", "exp": int(NOW) + 60})
    verified = verify_compact(token, world.keys(), world.policy, NOW)
    assert verified.legacy and verified.old_system and verified.subject == "alice"
    assert verified.token_hash is not None and verified.jti is None
    assert _reason(world, world.legacy_token({"sub": "alice"})) == "missing_claim"
    assert _reason(world, world.legacy_token({"sub": True, "exp": NOW + 60})) == "bad_claim_type"


def test_hs256_is_refused_by_the_phase_the_sunset_and_long_lifetimes(world: World) -> None:
    token = world.legacy_token({"sub": "alice", "exp": int(NOW) + 60})
    assert _reason(world, token, world.keys(accepts_hs256=False)) == "legacy_disabled"
    sunset = TokenPolicy(issuer="i", audience="a", leeway=30, max_bytes=8192,
                         legacy_accept_until=NOW)
    assert _reason(world, token, policy=sunset) == "legacy_disabled"
    assert _reason(world, token, now=NOW - 1, policy=sunset) is None
    far = world.legacy_token({"sub": "alice", "exp": int(NOW) + 31 * 86400})
    assert _reason(world, far) == "lifetime_too_long"


def test_hs256_with_a_wrong_secret_or_a_foreign_kid(world: World) -> None:
    claims = {"sub": "alice", "exp": int(NOW) + 60}
    wrong = world.token(claims, header={"alg": "HS256"}, sign=lambda d: hs256(b"guess", d))
    assert _reason(world, wrong) == "bad_signature"
    foreign_kid = world.token(claims, header={"alg": "HS256", "kid": "theirs"},
                              sign=lambda d: hs256(SECRET, d))
    assert _reason(world, foreign_kid) is None  # the old system's kid: the secrets are tried


def test_a_profile_without_legacy_refuses_hs256(world: World) -> None:
    profile = TokenProfile(frozenset({"mfa+jwt"}), {"sub": str}, "aud", allow_legacy=False)
    token = world.legacy_token({"sub": "1", "exp": int(NOW) + 60}, {"alg": "HS256",
                                                                    "typ": "mfa+jwt"})
    with pytest.raises(TokenRejected, match="^alg_mismatch$"):
        verify_compact(token, world.keys(), world.policy, NOW, profile=profile)


class _Reloading:
    """A key source whose second key set knows ``k2``; counts the reloads."""

    def __init__(self, first: StaticKeySet, second: StaticKeySet) -> None:
        self.sets, self.reloads = (first, second), 0

    def current(self) -> StaticKeySet:
        return self.sets[0]

    def reload_for_unknown_kid(self) -> StaticKeySet:
        self.reloads += 1
        return self.sets[1]


def test_an_unknown_kid_reloads_once_through_the_source(world: World) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    source = _Reloading(world.keys(), StaticKeySet([world.key, Key.of("k2", other.public_key())]))
    token = world.token(header={**ES, "kid": "k2"}, sign=lambda d: es256(other, d))
    verified = verify_compact(token, source.current(), world.policy, NOW, source=source)
    assert verified.kid == "k2" and source.reloads == 1
    with pytest.raises(TokenRejected, match="^unknown_kid$"):
        verify_compact(world.token(header={**ES, "kid": "k3"}), source.current(), world.policy,
                       NOW, source=source)
    assert source.reloads == 2


def test_the_header_cache_skips_only_what_it_checked(world: World) -> None:
    keys, headers = world.keys(), HeaderCache()
    token = world.token()
    verify_compact(token, keys, world.policy, NOW, headers=headers)
    head = token.split(".")[0].encode()
    assert headers.resolved(head, keys, ACCESS_PROFILE) is not None
    assert headers.resolved(head, world.keys(), ACCESS_PROFILE) is None  # another key set
    attacker = ec.generate_private_key(ec.SECP256R1())
    forged = world.token(access_claims(sub="1"), sign=lambda d: es256(attacker, d))
    with pytest.raises(TokenRejected, match="^bad_signature$"):
        verify_compact(forged, keys, world.policy, NOW, headers=headers)
    legacy = world.legacy_token({"sub": "a", "exp": int(NOW) + 60})
    verify_compact(legacy, keys, world.policy, NOW, headers=headers)
    assert headers.resolved(legacy.split(".")[0].encode(), keys, ACCESS_PROFILE) is None


def test_the_result_can_be_the_callers_subclass(world: World) -> None:
    """A cache keeps its own facts in the verified token's subclass, built by the verifier."""
    from dataclasses import dataclass

    from tessera_verifier import VerifiedToken

    @dataclass(slots=True)
    class Cached(VerifiedToken):
        uses: int = 0

    verified = verify_compact(world.token(), world.keys(), world.policy, NOW, result=Cached)
    assert isinstance(verified, Cached) and verified.uses == 0 and verified.subject == "42"
