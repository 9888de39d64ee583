"""The Verifier: Tessera's tokens by JWKS, legacy HS256 only while the published phase allows."""

from __future__ import annotations

import time

import pytest
from issuer import hs256
from tessera_verifier.errors import TokenRejected
from tessera_verifier.verifier import Verifier

SECRET = "old-shared-secret-0123456789-abcdef"


def _verifier(tessera, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("background", False)
    return Verifier(tessera.url, tessera.audience, metadata_url=tessera.metadata_url,
                    legacy_secrets=[SECRET], **kw)


def _reason(verifier, token) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(token)
    return caught.value.reason


def _legacy(exp_in: int = 600) -> str:
    return hs256(SECRET, {"sub": "alice", "exp": int(time.time()) + exp_in})


def test_tessera_token_accepted_with_jwks_uri_from_metadata(tessera) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(tessera)
    verified = verifier.verify(tessera.token())
    assert verified.subject == "7" and verified.alg == "ES256" and not verified.legacy
    assert verifier.claims(tessera.token(scope="a b"))["scope"] == "a b"


def test_reason_codes_are_the_shared_ones(tessera) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(tessera)
    assert _reason(verifier, tessera.token(aud="http://elsewhere")) == "bad_audience"
    assert _reason(verifier, tessera.token(iss="http://elsewhere")) == "bad_issuer"
    assert _reason(verifier, tessera.token(exp=int(time.time()) - 100)) == "expired"
    assert _reason(verifier, tessera.token(acr=...)) == "missing_claim"
    assert _reason(verifier, tessera.token()[:-4] + "AAAA") == "bad_signature"
    assert _reason(verifier, "a.b") == "malformed"
    assert _reason(verifier, "x" * 9000) == "too_large"


def test_legacy_tokens_follow_the_published_phase(tessera) -> None:  # type: ignore[no-untyped-def]
    tessera.metadata_max_age = 1
    verifier = _verifier(tessera, refresh_seconds=1)
    assert verifier.verify(_legacy()).legacy  # dual: accepted, old-system claim rules
    tessera.phase = "asymmetric"
    assert verifier.verify(_legacy()).legacy  # the old phase until the metadata is refreshed
    time.sleep(1.1)
    assert _reason(verifier, _legacy()) == "legacy_disabled"
    assert verifier.verify(tessera.token()).alg == "ES256"


def test_sunset_applies_at_its_second_without_a_refresh(tessera) -> None:  # type: ignore[no-untyped-def]
    tessera.sunset = int(time.time()) + 2  # whole seconds, as published
    verifier = _verifier(tessera, refresh_seconds=3600)
    token = _legacy()
    assert verifier.verify(token).legacy
    time.sleep(max(0.0, tessera.sunset - time.time()) + 0.05)
    assert _reason(verifier, token) == "legacy_disabled"
    assert tessera.requests[("/.well-known/oauth-authorization-server")] == 1


def test_no_metadata_or_no_secrets_means_no_legacy(tessera) -> None:  # type: ignore[no-untyped-def]
    plain = Verifier(tessera.url, tessera.audience, jwks_url=tessera.url + "/jwks.json",
                     legacy_secrets=[SECRET], background=False)
    assert _reason(plain, _legacy()) == "legacy_disabled"
    no_secret = Verifier(tessera.url, tessera.audience, metadata_url=tessera.metadata_url,
                         background=False)
    assert _reason(no_secret, _legacy()) == "legacy_disabled"


def test_legacy_token_with_a_wrong_secret_or_too_long_life(tessera) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(tessera)
    forged = hs256("not-the-secret", {"sub": "alice", "exp": int(time.time()) + 60})
    assert _reason(verifier, forged) == "bad_signature"
    assert _reason(verifier, _legacy(exp_in=40 * 86400)) == "lifetime_too_long"


def test_new_key_found_by_one_refetch_and_removed_key_refused(tessera) -> None:  # type: ignore[no-untyped-def]
    tessera.max_age = 1
    verifier = _verifier(tessera, refresh_seconds=1)
    verifier.verify(tessera.token())
    tessera.add_key("k2")
    assert verifier.verify(tessera.token(kid="k2")).kid == "k2"  # unknown kid: refetched
    old = tessera.token(kid="k1")
    del tessera.keys["k1"]  # revoked on Tessera: unpublished
    time.sleep(1.1)
    assert _reason(verifier, old) == "unknown_kid"


def test_public_key_never_an_hmac_secret(tessera) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(tessera)
    jwk = tessera.jwks()["keys"][0]
    forged = hs256(jwk["x"], {"sub": "7", "exp": int(time.time()) + 60},
                   header={"alg": "HS256", "kid": "k1", "typ": "at+jwt"})
    assert _reason(verifier, forged) == "alg_mismatch"


def test_starts_while_tessera_is_down_and_verifies_once_it_is_up(tessera) -> None:  # type: ignore[no-untyped-def]
    tessera.down = True
    verifier = _verifier(tessera)  # no request in the constructor
    assert _reason(verifier, tessera.token()) == "keys_unavailable"
    assert _reason(verifier, tessera.token()) == "keys_unavailable"
    assert tessera.requests["/.well-known/oauth-authorization-server"] == 1  # backed off
    tessera.down = False
    time.sleep(1.05)  # min_refresh after the failure
    assert verifier.verify(tessera.token()).kid == "k1"
