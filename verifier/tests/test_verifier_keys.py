"""Keys: one algorithm each, from cryptography objects or a JWK (RFC 7517)."""

from __future__ import annotations

import base64

import pytest
from conftest import NOW, World, b64
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256
from tessera_verifier import Key, StaticKeySet, key_from_jwk, verify_compact


def _int(n: int) -> str:
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def test_ec_jwk_verifies_the_token_its_private_key_signed(world: World) -> None:
    numbers = world.private.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
           "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
    key = key_from_jwk(jwk)
    assert (key.kid, key.alg, key.legacy) == ("k1", "ES256", False)
    verified = verify_compact(world.token(), StaticKeySet([key]), world.policy, NOW)
    assert verified.kid == "k1"


def test_rsa_jwk_verifies_rs256(world: World) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.public_key().public_numbers()
    key = key_from_jwk({"kty": "RSA", "kid": "r1", "n": _int(numbers.n), "e": _int(numbers.e)})
    token = world.token(header={"alg": "RS256", "kid": "r1", "typ": "at+jwt"},
                        sign=lambda d: private.sign(d, padding.PKCS1v15(), SHA256()))
    assert verify_compact(token, StaticKeySet([key]), world.policy, NOW).alg == "RS256"


@pytest.mark.parametrize("jwk", [
    {"kty": "EC", "crv": "P-384", "kid": "k", "x": "AA", "y": "AA"},
    {"kty": "oct", "kid": "k", "k": "c2VjcmV0"},
    {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
    {"kty": "RSA", "kid": "r", "n": 5, "e": "AQAB"},
])
def test_unsupported_or_incomplete_jwks_are_refused(jwk: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        key_from_jwk(jwk)


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _ec_jwk(world: World, **members: str) -> dict[str, str]:
    numbers = world.private.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "kid": "k1", "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")), **members}


@pytest.mark.parametrize("spoil", [
    lambda x: x + "=",  # padded
    lambda x: x[:-1] + _B64URL[_B64URL.index(x[-1]) ^ 1],  # a set bit past the last byte
    lambda x: x[:10] + "+" + x[11:],  # base64, not base64url
    lambda x: x[:10] + "\u00e9" + x[11:],  # not ASCII
    lambda x: "",
])
def test_a_jwk_coordinate_has_one_spelling(world: World, spoil) -> None:  # type: ignore[no-untyped-def]
    good = _ec_jwk(world)
    key_from_jwk(good)  # the canonical spelling verifies (test above)
    with pytest.raises(ValueError, match="base64url"):
        key_from_jwk({**good, "x": spoil(good["x"])})


def test_a_p256_coordinate_is_32_bytes(world: World) -> None:
    jwk = _ec_jwk(world)
    # The same number with a leading zero byte, or stripped of one: a different spelling
    # that lenient decoders accept; RFC 7518 §6.2.1.2 asks for the full coordinate size.
    padded = b64(b"\0" + base64.urlsafe_b64decode(jwk["x"] + "="))
    with pytest.raises(ValueError, match="32 bytes"):
        key_from_jwk({**jwk, "x": padded})


def test_a_jwk_alg_must_fit_its_key(world: World) -> None:
    numbers = world.private.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "HS256",
           "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
    with pytest.raises(ValueError, match="does not fit"):
        key_from_jwk(jwk)


def test_key_of_picks_the_one_algorithm() -> None:
    assert Key.of("h", b"secret").alg == "HS256" and Key.of("h", b"secret").legacy
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(TypeError):
        Key.of("e", p384)
    with pytest.raises(TypeError):
        Key.of("x", "a str is not a secret")


def test_hs256_compares_the_whole_mac() -> None:
    import hashlib
    import hmac
    key = Key.of("h", b"secret")
    mac = hmac.new(b"secret", b"data", hashlib.sha256).digest()
    assert key.verify(b"data", mac)
    assert not key.verify(b"data", mac[:-1]) and not key.verify(b"data", base64.b64encode(mac))


def test_static_key_set_is_its_own_source(world: World) -> None:
    keys = world.keys(revoked={"r"}, expired={"e"})
    assert keys.current() is keys and keys.reload_for_unknown_kid() is keys
    assert set(keys.keys) == {"k1", "legacy-1"} and keys.revoked_kids == {"r"}
