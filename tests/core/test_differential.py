"""The strict verifier against joserfc, property-based (issue 20, acceptance 3).

Genuine tokens (Tessera's ES256 access tokens, its HS256 form of phase ``legacy``,
the old system's HS256 tokens) are accepted by both with the same claims. Then the
tokens are mutated: bit flips, segment swaps and transplants, header edits (re-signed
with the real key, so that only the edit decides), padding, duplicate member names,
re-encodings of the JSON and of the base64url. Whatever the strict verifier accepts,
joserfc accepts too, with the same header and payload: it refuses everything joserfc
refuses (and more: claims, kid rules, the low S, duplicate names).

hypothesis explores the mutations; it runs derandomized, so a failure names an
example that stays the same run after run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey
from tessera_verifier.keys import P256_ORDER

from app.core.keyring import legacy_kid
from app.core.tokens import TokenRejected, VerifiedToken, sign_token, verify_token
from tests.support.keyrings import LEGACY_SECRET, NOW, claims, key_row, policy, snapshot_of

T = NOW.timestamp()
_ROW = key_row("k1")
SNAPSHOT = snapshot_of([_ROW], legacy=(LEGACY_SECRET,), phase="dual")
POLICY = policy(legacy_subject_claim="sub")
_SIGNER = SNAPSHOT.signer
assert _SIGNER is not None
EC_PUBLIC = ECKey.import_key(_SIGNER.key.as_dict(private=False))
SECRET = OctKey.import_key(LEGACY_SECRET.encode())
PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _sign(header_text: bytes, payload_text: bytes, alg: str) -> str:
    """Sign raw header and payload bytes as given (HS256: the legacy secret; else the EC key)."""
    signing_input = f"{_b64(header_text)}.{_b64(payload_text)}"
    if alg == "HS256":
        mac = hmac.new(LEGACY_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"
    # The header bytes are ours (duplicates, spacing): sign them as they are, low S.
    r, s = decode_dss_signature(_SIGNER.key.get_op_key("sign").sign(signing_input.encode(),
                                                                     ec.ECDSA(SHA256())))
    raw = r.to_bytes(32, "big") + min(s, P256_ORDER - s).to_bytes(32, "big")
    return f"{signing_input}.{_b64(raw)}"


def _compact(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# --- genuine tokens

user_ids = st.integers(min_value=1, max_value=2**31 - 1)
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz:", min_size=1, max_size=12)


@st.composite
def genuine(draw: st.DrawFn) -> str:
    """A token Tessera accepts at T: ES256 access token, HS256 of phase legacy, or old system."""
    kind = draw(st.sampled_from(["es256", "hs256_own", "old_system"]))
    uid = draw(user_ids)
    access = claims(uid, scope=" ".join(draw(st.lists(words, min_size=1, max_size=3))),
                    roles=draw(st.lists(words, max_size=3)),
                    exp=int(T) + draw(st.integers(min_value=1, max_value=900)))
    if kind == "es256":
        return sign_token(_SIGNER, access)
    if kind == "hs256_own":
        header = {"alg": "HS256", "kid": legacy_kid(LEGACY_SECRET), "typ": "at+jwt"}
        return _sign(_compact(header), _compact(access), "HS256")
    old: dict[str, Any] = {"sub": draw(words), "exp": int(T) + 600}
    if draw(st.booleans()):
        old["jti"] = draw(words)
    return _sign(_compact({"alg": "HS256", "typ": "JWT"}), _compact(old), "HS256")


# --- the two verifiers


def _ours(token: str) -> VerifiedToken | None:
    try:
        return verify_token(token, SNAPSHOT, POLICY, T)
    except TokenRejected:
        return None


def _resolve(obj: Any) -> OctKey | ECKey:
    return SECRET if obj.headers().get("alg") == "HS256" else EC_PUBLIC


def _theirs(token: str) -> jws.CompactSignature | None:
    try:
        return jws.deserialize_compact(token, _resolve, algorithms=["ES256", "HS256"])
    except (JoseError, ValueError, TypeError, KeyError, UnicodeError):
        return None


def _agree(token: str) -> VerifiedToken | None:
    """The property: accepted by us implies accepted by joserfc, with the same contents."""
    ours = _ours(token)
    if ours is not None:
        theirs = _theirs(token)
        assert theirs is not None, f"accepted what joserfc refuses: {token}"
        assert json.loads(theirs.payload) == ours.claims
        assert theirs.protected["alg"] == ours.alg
    return ours


@PROPERTY
@given(genuine())
def test_genuine_tokens_pass_both_with_the_same_claims(token: str) -> None:
    assert _agree(token) is not None
    assert _theirs(token) is not None


# --- mutations


def _flip_bit(token: str, data: st.DataObject) -> str:
    at = data.draw(st.integers(0, len(token) - 1))
    bit = data.draw(st.integers(0, 6))
    return token[:at] + chr(ord(token[at]) ^ (1 << bit)) + token[at + 1:]


def _flip_decoded(token: str, data: st.DataObject) -> str:
    parts = token.split(".")
    which = data.draw(st.integers(0, 2))
    raw = bytearray(_unb64(parts[which]))
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= 1 << data.draw(st.integers(0, 7))
    parts[which] = _b64(bytes(raw))
    return ".".join(parts)


def _swap(token: str, data: st.DataObject) -> str:
    parts = token.split(".")
    order = data.draw(st.permutations([0, 1, 2]))
    return ".".join(parts[i] for i in order)


def _transplant(token: str, data: st.DataObject) -> str:
    other = data.draw(genuine()).split(".")
    parts = token.split(".")
    which = data.draw(st.integers(0, 2))
    parts[which] = other[which]
    return ".".join(parts)


_HEADER_EDITS: list[Callable[[dict[str, Any]], dict[str, Any]]] = [
    lambda h: {**h, "alg": "none"},
    lambda h: {**h, "alg": "HS256"},
    lambda h: {**h, "alg": "ES256"},
    lambda h: {**h, "alg": "es256"},
    lambda h: {k: v for k, v in h.items() if k != "kid"},
    lambda h: {**h, "kid": "k2"},
    lambda h: {**h, "kid": legacy_kid(LEGACY_SECRET)},
    lambda h: {**h, "kid": 1},
    lambda h: {**h, "crit": ["exp"], "exp": 1},
    lambda h: {**h, "typ": "JWT"},
    lambda h: {**h, "typ": "AT+JWT"},
    lambda h: {**h, "jku": "https://evil.example/jwks.json"},
    lambda h: {**h, "b64": False},
    lambda h: {k: v for k, v in h.items() if k != "typ"},
]


def _edit_header(token: str, data: st.DataObject) -> str:
    head, body, _ = token.split(".")
    header = json.loads(_unb64(head))
    edited = data.draw(st.sampled_from(_HEADER_EDITS))(header)
    alg = edited.get("alg")
    return _sign(_compact(edited), _unb64(body), alg if alg == "HS256" else "ES256")


def _pad(token: str, data: st.DataObject) -> str:
    parts = token.split(".")
    which = data.draw(st.integers(0, 2))
    parts[which] += data.draw(st.sampled_from(["=", "==", "===", " ", "\n"]))
    return ".".join(parts)


def _duplicate(token: str, data: st.DataObject) -> str:
    head, body, _ = token.split(".")
    header, payload = json.loads(_unb64(head)), json.loads(_unb64(body))
    in_header = data.draw(st.booleans())
    target = header if in_header else payload
    name = data.draw(st.sampled_from(sorted(target)))
    value = data.draw(st.sampled_from([target[name], "other", 0]))
    text = _compact(target)[:-1] + b"," + json.dumps(name).encode() + b":" + json.dumps(
        value).encode() + b"}"
    header_text = text if in_header else _compact(header)
    payload_text = _compact(payload) if in_header else text
    return _sign(header_text, payload_text, header.get("alg", "ES256"))


def _reencode(token: str, data: st.DataObject) -> str:
    head, body, sig = token.split(".")
    header, payload = json.loads(_unb64(head)), json.loads(_unb64(body))
    how = data.draw(st.sampled_from(["spaces", "ascii", "sorted", "b64_last", "std_alphabet"]))
    if how in ("spaces", "ascii", "sorted"):
        options: dict[str, Any] = {"spaces": {"indent": 1}, "ascii": {"ensure_ascii": True},
                                   "sorted": {"sort_keys": True}}[how]
        return _sign(json.dumps(header, **options).encode(),
                     json.dumps(payload, **options).encode(), header.get("alg", "ES256"))
    parts = [head, body, sig]
    which = data.draw(st.integers(0, 2))
    if how == "b64_last" and len(parts[which]) % 4:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        last = alphabet.index(parts[which][-1]) ^ data.draw(st.integers(1, 3))
        parts[which] = parts[which][:-1] + alphabet[last]
    else:
        parts[which] = parts[which].replace("-", "+").replace("_", "/")
    return ".".join(parts)


MUTATIONS = [_flip_bit, _flip_decoded, _swap, _transplant, _edit_header, _pad, _duplicate,
             _reencode]


@PROPERTY
@given(genuine(), st.sampled_from(MUTATIONS), st.data())
def test_mutated_tokens_we_accept_joserfc_accepts(
    token: str, mutate: Callable[[str, st.DataObject], str], data: st.DataObject,
) -> None:
    _agree(mutate(token, data))


@PROPERTY
@given(genuine(), st.lists(st.sampled_from(MUTATIONS), min_size=2, max_size=3), st.data())
def test_stacked_mutations_too(
    token: str, mutations: list[Callable[[str, st.DataObject], str]], data: st.DataObject,
) -> None:
    for mutate in mutations:
        try:
            token = mutate(token, data)
        except (ValueError, UnicodeError, IndexError, AttributeError, TypeError):
            return  # a mutation that needs a well-formed token met one no longer so
    _agree(token)


def test_some_mutations_are_accepted_by_both() -> None:
    """The property is not vacuous: re-signed edits that keep a token valid pass both."""
    token = sign_token(_SIGNER, claims(7))
    head, body, _ = token.split(".")
    header, payload = json.loads(_unb64(head)), json.loads(_unb64(body))
    for text in (json.dumps(payload, indent=1), json.dumps(payload, sort_keys=True)):
        resigned = _sign(_compact(header), text.encode(), "ES256")
        assert _agree(resigned) is not None
    jku = _sign(_compact({**header, "jku": "https://evil.example"}), _unb64(body), "ES256")
    assert _agree(jku) is not None  # ignored by us, and by joserfc
