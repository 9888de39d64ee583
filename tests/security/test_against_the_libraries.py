"""The hand-written parts of verification, held against the libraries they stand in for.

For speed, the strict verifier (tessera_verifier.jose) decodes base64url and reads
JSON itself instead of calling joserfc per token (README, Decisions).
Each part must agree with the library on every input the library accepts, and
may only be stricter: these tests feed both the same inputs, many of them random.
"""

from __future__ import annotations

import base64
import json
import os
import random

import pytest
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.util import urlsafe_b64decode
from tessera_verifier import jose

from app.core import tokens as token_rules
from app.core.tokens import TokenRejected

_RANDOM = random.Random(20261202)  # seeded: a failure names an input that stays the same


def _library_decode(segment: bytes) -> bytes | None:
    try:
        return urlsafe_b64decode(segment)
    except (ValueError, TypeError):  # binascii.Error is a ValueError
        return None


def _ours_decode(segment: bytes) -> bytes | None:
    try:
        return jose.decode_segment(segment)
    except TokenRejected:
        return None


def _segments() -> list[bytes]:
    """Canonical encodings, their non-canonical twins, and noise in the alphabet and out."""
    out: list[bytes] = []
    for size in range(40):
        data = os.urandom(size)
        canonical = base64.urlsafe_b64encode(data).rstrip(b"=")
        out.append(canonical)
        out.append(base64.urlsafe_b64encode(data))  # padded
        if canonical:  # a different last character: unused bits set, or another value
            for last in b"AQgwBRhxz9_-":
                out.append(canonical[:-1] + bytes([last]))
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= .\n"
    out += [bytes(_RANDOM.choice(alphabet) for _ in range(_RANDOM.randrange(1, 12)))
            for _ in range(3000)]
    return out


def test_base64url_agrees_with_joserfc() -> None:
    """Accepted exactly where joserfc accepts (non-empty), with the same bytes."""
    for segment in _segments():
        library, ours = _library_decode(segment), _ours_decode(segment)
        if not segment:
            assert ours is None  # an empty segment is malformed in a token
            continue
        assert ours == library, segment


def _json_library(text: str) -> dict[str, object] | None:
    """The standard parser, with the rules of RFC 7515/8259 that tokens add: an object,
    no duplicate member names, no NaN or Infinity."""
    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        names = [name for name, _ in pairs]
        if len(names) != len(set(names)):
            raise ValueError("duplicate")
        return dict(pairs)

    def no_constants(name: str) -> object:
        raise ValueError(name)

    try:
        value = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


_JSON_TEXTS = [
    '{"a":1}', '{"a":1,"a":2}', '{"a":{"b":1,"b":2}}', ' {"a":1}', '{"a":1} ', '{"a":NaN}',
    '{"a":Infinity}', '{"a":-Infinity}', '[1]', '"s"', '1', 'null', '{}', '{"a":1e400}',
    '{"a":"\\ud800"}', '{"a":[1,2,{"c":null}]}', '{"a":1}{"b":2}', '{"a":tru}', '{"\u00e9":1}',
    '{"a":1,}', "{'a':1}", '{"a":0x10}', '{"a":01}', '{"a":"x\\u0000y"}',
]


@pytest.mark.parametrize("text", _JSON_TEXTS)
def test_json_segments_agree_with_the_standard_parser(text: str) -> None:
    segment = base64.urlsafe_b64encode(text.encode()).rstrip(b"=")
    try:
        ours: dict[str, object] | None = jose.json_object(segment)
    except TokenRejected:
        ours = None
    assert ours == _json_library(text)


def test_tokens_tessera_accepts_joserfc_accepts_too(app) -> None:  # type: ignore[no-untyped-def]
    """Random single-byte changes to a valid token: whatever Tessera accepts, joserfc's
    own verification accepts with the same claims (Tessera may refuse more)."""
    from app.security import snapshot, token_policy
    from tests.support.tokens import claims_for, make_user

    uid = make_user(app, "alice")
    with app.app_context():
        current = snapshot()
        signer = current.signer
        assert signer is not None
        public = ECKey.import_key(signer.key.as_dict(private=False))
        token = token_rules.sign_token(signer, claims_for(app, uid))
        policy = token_policy()
        now = float(claims_for(app, uid)["iat"])
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
        variants = [token]
        for _ in range(600):
            at = _RANDOM.randrange(len(token))
            variants.append(token[:at] + _RANDOM.choice(alphabet) + token[at + 1:])
        accepted = 0
        for variant in variants:
            try:
                ours = token_rules.verify_token(variant, current, policy, now)
            except TokenRejected:
                continue
            accepted += 1
            try:
                theirs = jws.deserialize_compact(variant, public, algorithms=["ES256"])
            except (JoseError, ValueError) as exc:
                pytest.fail(f"Tessera accepted what joserfc refuses ({exc!r}): {variant}")
            assert json.loads(theirs.payload) == ours.claims
        assert accepted >= 1  # the untouched token at least
