"""RFC 7515 Appendix A.1 (HS256) and A.3 (ES256), RFC 7520 §4.1 (RS256) and §4.4 (HS256)
through the strict verifier, beside joserfc (tests/vectors/jws_rfc7515_rfc7520.json).

Every vector's parsing and signature agree with joserfc's. Where the vector is not a
Tessera token the full verification refuses it for the reason written next to it: the
strict verifier only ever refuses more than the library, never accepts more.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import import_key
from tessera_verifier import (
    Key,
    StaticKeySet,
    TokenPolicy,
    TokenRejected,
    key_from_jwk,
    verify_compact,
)
from tessera_verifier.jose import decode_segment, json_object, split_compact
from tessera_verifier.keys import P256_ORDER

_VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "jws_rfc7515_rfc7520.json")
                      .read_text())["vectors"]
_BY_ID = {v["id"]: v for v in _VECTORS}
A1_EXP = 1300819380


def _ours(vector: dict[str, Any]) -> Key:
    jwk = {"kid": "vector", **vector["key"]}
    if jwk["kty"] == "oct":
        secret = base64.urlsafe_b64decode(jwk["k"] + "=" * (-len(jwk["k"]) % 4))
        return Key.of(jwk["kid"], secret)
    return key_from_jwk(jwk)


def _theirs(vector: dict[str, Any], compact: str) -> jws.CompactSignature:
    return jws.deserialize_compact(compact, import_key(vector["key"]), algorithms=[vector["alg"]])


@pytest.mark.parametrize("vector", _VECTORS, ids=[v["id"] for v in _VECTORS])
def test_parsing_agrees_with_joserfc(vector: dict[str, Any]) -> None:
    theirs = _theirs(vector, vector["compact"])
    head, body, sig = split_compact(vector["compact"], 8192)
    assert json_object(head) == theirs.protected == vector["header"]
    assert decode_segment(body) == theirs.payload
    if "claims" in vector:
        assert json_object(body) == json.loads(theirs.payload) == vector["claims"]
    else:
        assert theirs.payload.decode() == vector["payload_text"]
    assert decode_segment(sig)  # canonical base64url, as published


@pytest.mark.parametrize("vector", [v for v in _VECTORS if v["id"] != "rfc7515-A.3"],
                         ids=[v["id"] for v in _VECTORS if v["id"] != "rfc7515-A.3"])
def test_signatures_verify_as_with_joserfc(vector: dict[str, Any]) -> None:
    head, body, sig = split_compact(vector["compact"], 8192)
    key = _ours(vector)
    assert key.alg == vector["alg"]
    assert key.verify(head + b"." + body, decode_segment(sig))
    assert not key.verify(head + b"." + body + b" ", decode_segment(sig))


def test_a3_is_the_high_s_text_and_its_low_s_twin_verifies_with_both() -> None:
    """RFC 7515 A.3 happens to carry the high S: joserfc accepts it, the strict verifier
    refuses it (one text per signature, issue 16 item 10); its low-S twin passes both."""
    vector = _BY_ID["rfc7515-A.3"]
    head, body, sig = split_compact(vector["compact"], 8192)
    raw = decode_segment(sig)
    s = int.from_bytes(raw[32:], "big")
    assert s > P256_ORDER // 2
    key = _ours(vector)
    assert not key.verify(head + b"." + body, raw)
    twin = raw[:32] + (P256_ORDER - s).to_bytes(32, "big")
    assert key.verify(head + b"." + body, twin)
    low = f"{head.decode()}.{body.decode()}.{base64.urlsafe_b64encode(twin).rstrip(b'=').decode()}"
    assert _theirs(vector, low).payload == decode_segment(body)


def _policy(**changes: Any) -> TokenPolicy:
    return TokenPolicy(issuer="joe", audience="-", leeway=30, max_bytes=8192, **changes)


def test_a1_passes_as_an_old_system_token_until_its_exp() -> None:
    """A.1 is an old-system HS256 token (no kid, typ JWT): with ``iss`` as the subject claim
    and its secret as the legacy key it verifies, with joserfc's claims."""
    vector = _BY_ID["rfc7515-A.1"]
    keys = StaticKeySet([], [_ours(vector)])
    policy = _policy(legacy_subject_claim="iss")
    verified = verify_compact(vector["compact"], keys, policy, A1_EXP - 60.0)
    assert verified.old_system and verified.legacy and verified.subject == "joe"
    assert verified.claims == json.loads(_theirs(vector, vector["compact"]).payload)
    with pytest.raises(TokenRejected, match="^expired$"):
        verify_compact(vector["compact"], keys, policy, A1_EXP + 30.0)
    with pytest.raises(TokenRejected, match="^missing_claim$"):  # no sub: SPEC §4's default
        verify_compact(vector["compact"], keys, _policy(), A1_EXP - 60.0)


@pytest.mark.parametrize(("vector_id", "reason"), [
    ("rfc7515-A.3", "missing_kid"),  # ES256 names its key (SPEC §3 step 4)
    ("rfc7520-4.1", "bad_kid"),  # "@" is outside the kid alphabet
    ("rfc7520-4.4", "malformed"),  # the payload is text, not a JSON object
])
def test_vectors_that_are_not_tokens_are_refused_for_their_reason(
    vector_id: str, reason: str,
) -> None:
    vector = _BY_ID[vector_id]
    key = _ours(vector)
    keys = StaticKeySet([] if key.legacy else [key], [key] if key.legacy else [])
    with pytest.raises(TokenRejected, match=f"^{reason}$"):
        verify_compact(vector["compact"], keys, _policy(), A1_EXP - 60.0)
