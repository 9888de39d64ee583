"""The assembled ES256 path of ``sign_token`` held against joserfc's ``serialize_compact``
and PyJWT.

``sign_token`` assembles ES256 tokens from joserfc's pieces, the key checked once
at load (``serialize_compact``'s per-token checks cost more than the signature;
NOTES-speed-writes.md). These pin that it makes what ``serialize_compact`` makes:
the same header and payload bytes, a low-S raw signature that joserfc, PyJWT and
Tessera's own verifier accept; and that RS256, HS256 and keys that fail the check
still go through ``serialize_compact``.
"""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode

import jwt
import pytest
from joserfc import jws
from joserfc.jwk import ECKey
from tessera_verifier.keys import P256_ORDER

from app.core.keyring import SigningMaterial, signing_registry
from app.core.keys import generate_key
from app.core.tokens import sign_token, verify_token
from tests.support.keyrings import AUDIENCE, ISSUER, NOW, claims, key_row, policy, snapshot_of


def _b64decode(segment: str) -> bytes:
    return urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _joserfc_text(signer: SigningMaterial, body: dict[str, object], typ: str) -> str:
    """The token joserfc itself makes for the same header and claims."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    return jws.serialize_compact({"alg": signer.alg, "kid": signer.kid, "typ": typ}, payload,
                                 signer.key, registry=signing_registry(signer.alg))


@pytest.mark.parametrize("typ", ["at+jwt", "secevent+jwt"])
def test_es256_tokens_have_joserfcs_header_and_payload_bytes(typ: str) -> None:
    snapshot = snapshot_of([key_row("k-fast")])
    signer = snapshot.signer
    assert signer is not None and signer.checked
    body = claims(roles=["admin", "ünïcode"])  # non-ASCII: both escape it the same way
    fast, reference = sign_token(signer, body, typ), _joserfc_text(signer, body, typ)
    assert fast.split(".")[:2] == reference.split(".")[:2]
    assert json.loads(_b64decode(fast.split(".")[0])) == {"alg": "ES256", "kid": "k-fast",
                                                           "typ": typ}


def test_es256_tokens_verify_with_joserfc_pyjwt_and_tessera() -> None:
    snapshot = snapshot_of([key_row("k-fast")])
    signer, public = snapshot.signer, snapshot.keys["k-fast"]
    assert signer is not None
    pem = signer.key.get_op_key("sign").public_key()
    for n in range(1, 41):  # about half of raw ECDSA signatures come out with the high S
        body = claims(user_id=n)
        token = sign_token(signer, body)
        head, payload, sig = token.split(".")
        raw = _b64decode(sig)
        assert len(raw) == 64 and int.from_bytes(raw[32:], "big") <= P256_ORDER // 2
        assert public.verify(f"{head}.{payload}".encode(), raw)
        joserfc_says = jws.deserialize_compact(token, public.key, algorithms=["ES256"])
        assert json.loads(joserfc_says.payload) == body
        assert jwt.decode(token, pem, algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER,
                          options={"verify_exp": False, "verify_nbf": False,
                                   "verify_iat": False}) == body
        verified = verify_token(token, snapshot, policy(), NOW.timestamp())
        assert verified.claims["sub"] == str(n)


@pytest.mark.parametrize("alg", ["RS256", "HS256"])
def test_other_algorithms_still_sign_through_joserfc(alg: str) -> None:
    key = generate_key(alg) if alg == "RS256" else None
    signer = (SigningMaterial("k-rsa", alg, key) if key is not None
              else snapshot_of([], legacy=("a-legacy-secret-0123456789abcdef",),
                               phase="legacy").legacy_signer)
    assert signer is not None and not signer.checked
    body = claims()
    assert sign_token(signer, body).split(".")[:2] == _joserfc_text(signer, body,
                                                                   "at+jwt").split(".")[:2]


@pytest.mark.parametrize("which", ["public", "p384"])
def test_a_key_that_fails_the_check_goes_to_joserfc_and_fails_there(which: str) -> None:
    key = (ECKey.import_key(generate_key("ES256").as_dict(private=False)) if which == "public"
           else ECKey.generate_key("P-384"))
    signer = SigningMaterial("k-odd", "ES256", key)
    assert not signer.checked
    with pytest.raises(Exception):  # noqa: B017 - joserfc's own refusal, as before
        sign_token(signer, claims())
