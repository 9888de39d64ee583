"""Forged, malformed and borderline access tokens against ``GET /api/me`` (SPEC §3, §4; issue 3).

A table per family: compact form, size, canonical base64url and strict JSON (step 1);
``alg``, ``crit``, ``kid``, ``typ`` and keys named in headers (steps 2-4); HS256 keyed
with the EC public key; signatures, and every r||s shape of the hand-built ES256 DER
(step 5); claims, types and leeway edges (step 5). Rows named ``*_before_*`` pin which
check answers when several fail. Every refusal must be a 401 ``invalid_token`` with
``WWW-Authenticate`` and its internal reason (read from the verification metric), on
a cold cache and with the caches warm (a valid token with the same header segment
verified just before), twice in a row, without entering either cache. Tokens that must
pass are sent cold and warm too. The apps run on a frozen clock, so times are exact.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from flask import Flask
from flask_migrate import upgrade
from joserfc import jws
from joserfc.jwk import ECKey

from app import create_app
from app.core.clock import FrozenClock
from app.core.keyring import legacy_kid
from app.core.tokens import (
    ACCESS_PROFILE,
    TokenRejected,
    VerifiedTokenCache,
    sign_token,
    verify_cached,
)
from app.extensions import db
from app.security import keyops, snapshot, token_policy
from app.security.principals import TokenEntry
from tests.conftest import MIGRATIONS, POSTGRES_URL, TEST_KEK
from tests.support.tokens import PASSWORD, b64, b64json, bearer, claims_for, make_user

LEGACY_SECRET = "old-shared-secret-0123456789-abcdef"
LEGACY_KID = legacy_kid(LEGACY_SECRET)
AUDIENCE = "http://localhost/api"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
REFUSAL = {"error": "invalid_token", "message": "The access token is invalid.", "details": {}}


# --- tokens built by hand (joserfc would refuse to make most of these)


def _es256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """A JWS ES256 signature: r||s, 32 bytes each (RFC 7518 §3.4), in the low-S form."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(SHA256())))
    return r.to_bytes(32, "big") + min(s, P256_ORDER - s).to_bytes(32, "big")


def _s(signature: bytes) -> int:
    return int.from_bytes(signature[32:], "big")


def _high_s_twin(signature: bytes) -> bytes:
    """(r, n - s): the same signature's other text, which plain ECDSA also accepts."""
    return signature[:32] + (P256_ORDER - _s(signature)).to_bytes(32, "big")


def _hs256(secret: bytes | str, data: bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, data, hashlib.sha256).digest()


def _seg(value: Any) -> str:
    """A segment: dicts and lists as compact JSON, ``str`` as that exact text, bytes as given."""
    return b64json(value) if isinstance(value, dict | list) else b64(value)


def _jws(header: Any, payload: Any, sign: Callable[[bytes], bytes] | None = None) -> str:
    head, body = _seg(header), _seg(payload)
    return f"{head}.{body}.{b64(sign(f'{head}.{body}'.encode()) if sign else b'')}"


def _swap(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def _decoded(token: str, index: int) -> bytes:
    return base64.urlsafe_b64decode(token.split(".")[index] + "==")


@dataclasses.dataclass(frozen=True)
class World:
    """An app, its user, and what a forger may hold: the kid, the public keys, a valid token."""

    app: Flask
    uid: int
    kid: str
    private: ec.EllipticCurvePrivateKey  # the real key, for tokens one change away from valid
    attacker: ec.EllipticCurvePrivateKey
    jwks: bytes  # as served
    now: int
    base: str = ""  # valid; segments 2, 3, 2 mod 4 long; payload and signature hold '-' and '_'

    @property
    def header(self) -> dict[str, Any]:
        return {"alg": "ES256", "kid": self.kid, "typ": "at+jwt"}

    @property
    def parts(self) -> list[str]:
        return self.base.split(".")

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return claims_for(self.app, self.uid, **overrides)

    def sign(self, payload: Any = None, header: Any = None,
             key: ec.EllipticCurvePrivateKey | None = None) -> str:
        """ES256 over these segments (default: the real header, fresh claims, the real key)."""
        signer = key or self.private
        return _jws(self.header if header is None else header,
                    self.claims() if payload is None else payload, lambda d: _es256(signer, d))

    def public(self, encoding: str) -> bytes:
        """The EC public key in a form an attacker might feed HMAC as its secret."""
        key, spki = self.private.public_key(), ser.PublicFormat.SubjectPublicKeyInfo
        if encoding == "jwk_json":  # the JWKS entry, byte for byte
            entry = next(k for k in json.loads(self.jwks)["keys"] if k["kid"] == self.kid)
            return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        if encoding == "raw_point":
            return key.public_bytes(ser.Encoding.X962, ser.PublicFormat.UncompressedPoint)
        return key.public_bytes(ser.Encoding.PEM if encoding == "pem" else ser.Encoding.DER, spki)


def _base_token(w: World) -> str:
    # Shaped so every base64url corner applies: "pad" makes the payload 3 mod 4 long with
    # '-' and '_' in it ("~~~" -> "fn5-", "???" -> "Pz8_"); re-signed until the signature
    # holds both too.
    claims, head = w.claims(jti="base"), _seg(w.header)
    bodies = (_seg({**claims, "pad": "~~~~~?????" + "x" * n}) for n in range(4))
    body = next(b for b in bodies if len(b) % 4 == 3)
    while not {"-", "_"} <= set(sig := b64(_es256(w.private, f"{head}.{body}".encode()))):
        pass
    return f"{head}.{body}.{sig}"


def _sized(w: World, total: int) -> str:
    """A valid token of exactly ``total`` bytes, filled by a "pad" claim."""
    claims = w.claims(jti="cap")
    room = total - len(w.parts[0]) - 2 - 86  # the header, two dots, a 64-byte signature
    pad = room * 3 // 4 - len(json.dumps({**claims, "pad": ""}, separators=(",", ":")))
    token = w.sign({**claims, "pad": "p" * pad})
    assert len(token) == total
    return token


def _world(app: Flask, clock: FrozenClock) -> World:
    uid = make_user(app, "target")
    with app.app_context():
        signer = snapshot().signer
    assert signer is not None
    w = World(app, uid, signer.kid, signer.key.get_op_key("sign"),
              ec.generate_private_key(ec.SECP256R1()),
              app.test_client().get("/.well-known/jwks.json").get_data(), int(clock().timestamp()))
    return dataclasses.replace(w, base=_base_token(w))


@pytest.fixture(scope="module")
def sqlite_template(database_template: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file for the module-wide apps (verification needs no PostgreSQL)."""
    if not POSTGRES_URL:
        return Path(database_template)
    path = tmp_path_factory.mktemp("attacks-template") / "template.db"
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "KEY_ENCRYPTION_KEY": TEST_KEK},
                     instance_path=str(path.parent))
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        db.engine.dispose()
    return path


def _module_world(template: Path, tmp: Path, phase: str) -> Iterator[World]:
    # One app for hundreds of rows (make_app is per test); each row installs fresh caches.
    shutil.copyfile(template, tmp / "tessera.db")
    clock = FrozenClock()
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp / 'tessera.db'}",
                      "KEY_ENCRYPTION_KEY": TEST_KEK, "ISSUER": "http://localhost",
                      "KEYRING_REFRESH": 3600, "LEGACY_HS256_SECRETS": [LEGACY_SECRET],
                      "MIGRATION_PHASE": phase}, clock=clock, instance_path=str(tmp / "instance"))
    with app.app_context():
        keyops.ensure_signing_keys()
    yield _world(app, clock)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The ``dual`` phase: HS256 is live, so HS256 forgeries meet the key checks, not the phase."""
    yield from _module_world(sqlite_template, tmp_path_factory.mktemp("dual"), "dual")


@pytest.fixture(scope="module")
def asymmetric(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from _module_world(sqlite_template, tmp_path_factory.mktemp("asym"), "asymmetric")


# --- sending tokens and reading the verdict


def _rejections(app: Flask) -> Counter[str]:
    """Refusals counted so far, by internal reason (the metric of SPEC §9)."""
    counter = app.extensions["tessera.metrics"].verifications
    return Counter({s.labels["reason"]: int(s.value) for metric in counter.collect()
                    for s in metric.samples
                    if s.name.endswith("_total") and s.labels["result"] == "invalid"})


def _verdict(w: World, token: str) -> str | None:
    """Send ``token``: None when accepted, else the reason counted (the 401 shape checked)."""
    before = _rejections(w.app)
    response = w.app.test_client().get("/api/me", headers=bearer(token))
    counted = _rejections(w.app) - before
    if response.status_code == 200 and not counted:
        assert response.get_json()["sub"] == str(w.uid)
        return None
    assert response.status_code == 401, (response.status_code, response.get_json())
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.get_json() == {**REFUSAL, "request_id": response.headers["X-Request-ID"]}
    assert sum(counted.values()) == 1, counted
    return next(iter(counted))


def _fresh_cache(w: World, warm: bool) -> VerifiedTokenCache:
    """Empty caches, as in a new process; warm: the base token verified through them first."""
    cache = w.app.extensions["tessera.security"].cache = VerifiedTokenCache()
    if warm:
        assert _verdict(w, w.base) is None
        with w.app.app_context():
            resolved = cache.headers.resolved(w.parts[0].encode(), snapshot(), ACCESS_PROFILE)
            assert resolved is not None
    return cache


def _verdicts(w: World, forge: Forge) -> list[str | None]:
    """Verdicts cold, cold, warm, warm; a refused token enters neither cache."""
    seen: list[str | None] = []
    for warm in (False, True):
        cache = _fresh_cache(w, warm)
        token = forge(w)
        seen += [_verdict(w, token), _verdict(w, token)]
        assert len(cache) == warm + (seen[-1] is None), f"cache holds {len(cache)}, {warm=}"
        head = token.split(".")[0].encode()
        if seen[-1] is not None and head != w.parts[0].encode():
            with w.app.app_context():
                assert cache.headers.resolved(head, snapshot(), ACCESS_PROFILE) is None
    return seen


# --- building blocks of the tables (a value given as a callable is called with the world)

Forge = Callable[[World], str]


def _rows(reason: str, **forges: Forge) -> dict[str, tuple[Forge, str]]:
    return {name: (forge, reason) for name, forge in forges.items()}


def _resolve(w: World, values: dict[str, Any]) -> dict[str, Any]:
    return {k: v(w) if callable(v) else v for k, v in values.items()}


def _header(by_attacker: bool = False, **changes: Any) -> Forge:
    """The real header with ``changes`` (``...`` deletes), signed by the real or attacker key."""
    def forge(w: World) -> str:
        header = {k: v for k, v in {**w.header, **_resolve(w, changes)}.items() if v is not ...}
        return w.sign(header=header, key=w.attacker if by_attacker else None)
    return forge


def _claims(**changes: Any) -> Forge:
    """Fresh claims with ``changes`` (``...`` deletes), under the real header and key."""
    return lambda w: w.sign(w.claims(**_resolve(w, changes)))


def _at(offset: int, name: str) -> Forge:
    return _claims(**{name: lambda w: w.now + offset})


def _unsigned(alg: str) -> Forge:
    return lambda w: _jws({**w.header, "alg": alg}, w.claims())


def _resigned(change: Callable[[bytes], bytes]) -> Forge:
    """The base token with its signature replaced by ``change(r||s)``."""
    return lambda w: _swap(w.base, 2, b64(change(_decoded(w.base, 2))))


def _flip(index: int) -> Callable[[bytes], bytes]:
    return lambda s: s[:index] + bytes([s[index] ^ 1]) + s[index + 1:]


def _under_old_signature(**changes: Any) -> Forge:
    def forge(w: World) -> str:
        return _swap(w.base, 1, _seg({**json.loads(_decoded(w.base, 1)), **_resolve(w, changes)}))
    return forge


def _hmac_with_public(encoding: str, kid: str | None) -> Forge:
    """HS256 keyed with the EC public key: the classic algorithm-confusion forgery."""
    def forge(w: World) -> str:
        named = {"kid": w.kid if kid == "ec" else kid} if kid else {}
        return _jws({"alg": "HS256", "typ": "at+jwt", **named}, w.claims(),
                    lambda d: _hs256(w.public(encoding), d))
    return forge


def _old_system_token(w: World) -> str:
    return _jws({"alg": "HS256", "typ": "JWT"}, {"sub": str(w.uid), "exp": w.now + 600},
                lambda d: _hs256(LEGACY_SECRET, d))


def _mutated(index: int, mutate: Callable[[str], str]) -> Forge:
    def forge(w: World) -> str:
        original = w.parts[index]
        assert mutate(original) != original and len(original) % 4 in (2, 3)  # the corner applies
        return _swap(w.base, index, mutate(original))
    return forge


def _inserted(char: str) -> Callable[[str], str]:
    return lambda s: s[:7] + char + s[7:]


def _raw(w: World, which: str) -> str:
    return json.dumps(w.header if which == "header" else w.claims(), separators=(",", ":"))


def _nested_member(obj: str, arrays: int) -> str:
    """The JSON object ``obj`` with a member ``x`` of ``arrays`` nested arrays (built as
    text: json.dumps itself recurses), so it nests ``arrays`` + 1 levels."""
    return obj[:-1] + ',"x":' + "[" * arrays + "]" * arrays + "}"


def _old_claims(w: World) -> str:
    return json.dumps({"sub": str(w.uid), "exp": w.now + 600}, separators=(",", ":"))


ATTACKER_HEADERS: dict[str, Any] = {
    "jwk": lambda w: ECKey.import_key(w.attacker.public_key()).as_dict(),
    "jku": "https://attacker.example/jwks.json", "x5u": "https://attacker.example/cert.pem",
    # A "chain" for the attacker's key; its SPKI stands in, as nothing may read x5c at all.
    "x5c": lambda w: [base64.b64encode(w.attacker.public_key().public_bytes(
        ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)).decode()],
}

# --- step 1: size, compact form, canonical base64url, strict JSON objects

FORM = {
    **_rows("malformed", two_segments=lambda w: ".".join(w.parts[:2]),
            four_segments=lambda w: f"{w.base}.{w.parts[2]}", five_segments=lambda w: w.base + "..",
            signature_stripped=lambda w: _swap(w.base, 2, ""), only_dots=lambda w: "..",
            header_empty=lambda w: _swap(w.base, 0, ""),
            payload_empty=lambda w: _swap(w.base, 1, "")),
    **_rows("too_large", junk_over_cap=lambda w: "a" * 8193, size_before_form=lambda w: "!" * 9000,
            signed_one_byte_over_cap=lambda w: _sized(w, 8193)),
}
MUTATIONS: dict[str, Callable[[str], str]] = {  # "leniently": a lax decoder gets the same bytes
    "padding": lambda s: s + "=" * (-len(s) % 4),  # leniently
    "standard_alphabet": lambda s: s.replace("-", "+").replace("_", "/"),  # leniently
    "unused_bits_set": lambda s: s[:-1] + B64URL[B64URL.index(s[-1]) + 1],  # leniently
    "length_1_mod_4": lambda s: s + "A" * ((1 - len(s)) % 4),
    "outside_alphabet": lambda s: s[:7] + "*" + s[8:],
    **{f"{name}_inside": _inserted(char) for name, char in (("space", " "), ("tab", "\t"),
       ("nul", "\x00"), ("non_ascii", "é"), ("zero_width", "\u200b"))},  # leniently, some
}
BASE64 = _rows("malformed", **{
    f"{segment}_{name}": _mutated(index, mutate)
    for index, segment in enumerate(("header", "payload", "signature"))
    for name, mutate in MUTATIONS.items()
    if (segment, name) != ("header", "standard_alphabet")})  # no '-' or '_' is promised there
JSON_SHAPES = _rows(
    "malformed",
    header_array=lambda w: w.sign(header=[w.header]),
    header_string=lambda w: w.sign(header='"ES256"'),
    header_duplicate_kid=lambda w: w.sign(header=_raw(w, "header")[:-1] + f',"kid":"{w.kid}"}}'),
    header_duplicate_alg=lambda w: w.sign(header='{"alg":"none",' + _raw(w, "header")[1:]),
    header_trailing_data=lambda w: w.sign(header=_raw(w, "header") + "{}"),
    header_not_utf8=lambda w: w.sign(header=_raw(w, "header").encode()[:-1] + b',"x":"\xff"}'),
    payload_array=lambda w: w.sign([w.claims()]), payload_string=lambda w: w.sign('"sub"'),
    payload_null=lambda w: w.sign("null"), payload_not_json=lambda w: w.sign("{sub: 1}"),
    payload_duplicate_sub=lambda w: w.sign(_raw(w, "payload")[:-1] + ',"sub":"999"}'),
    payload_duplicate_same=lambda w: w.sign(_raw(w, "payload")[:-1] + f',"sub":"{w.uid}"}}'),
    payload_trailing_data=lambda w: w.sign(_raw(w, "payload") + ' {"roles":["admin"]}'),
    payload_not_utf8=lambda w: w.sign(_raw(w, "payload").encode()[:-1] + b',"x":"\xc3\x28"}'),
    payload_nested_deeply=lambda w: w.sign('{"x":' + "[" * 2500 + "]" * 2500 + "}"),
    # Issue 16 item 6: a header past 32 levels, however signed, and one past json's own
    # recursion within the size cap; an HS256 payload past 32 levels (any holder of the
    # shared secret signs what they like), signed well or badly.
    header_nested_past_the_limit=lambda w: w.sign(header=_nested_member(_raw(w, "header"), 32)),
    header_nested_deeply=lambda w: w.sign(header=_nested_member(_raw(w, "header"), 2600)),
    hs256_payload_nested_past_the_limit=lambda w: _jws(
        {"alg": "HS256", "typ": "JWT"}, _nested_member(_old_claims(w), 32),
        lambda d: _hs256(LEGACY_SECRET, d)),
    hs256_payload_nested_past_the_limit_badly_signed=lambda w: _jws(
        {"alg": "HS256", "typ": "JWT"}, _nested_member(_old_claims(w), 32),
        lambda d: _hs256("not-the-secret", d)),
    hs256_payload_nested_deeply=lambda w: _jws(
        {"alg": "HS256", "typ": "JWT"}, _nested_member(_old_claims(w), 2600)),
    # RFC 8259 §6: NaN and Infinity are not JSON numbers, though Python's json reads them.
    payload_exp_infinity=_claims(exp=float("inf")), payload_iat_nan=_claims(iat=float("nan")),
    payload_auth_time_minus_infinity=_claims(auth_time=float("-inf")),
    payload_form_before_signature=lambda w: _swap(w.base, 1, b64("{")),
)

# --- steps 2-4: alg, crit, kid, typ, keys named in headers (signed by the real key unless noted)

CASINGS = ("none", "None", "NONE", "nOnE")
BAD_KIDS: dict[str, Any] = {
    "huge": "k" * 5000, "65_chars": "k" * 65, "empty": "", "number": 1, "bool": True,
    "list": lambda w: [w.kid], "object": lambda w: {"kid": w.kid}, "nul": lambda w: w.kid + "\x00",
    "trailing_newline": lambda w: w.kid + "\n", "path": "../../../../etc/passwd",
    "absolute_path": "/dev/null", "sql": "' OR '1'='1' --", "unicode": "kïd",
    "sql_drop": "x'; DROP TABLE signing_keys;--",
}
HEADERS = {
    **_rows("alg_none", **{f"alg_{a}_unsigned": _unsigned(a) for a in CASINGS},
            alg_none_signed=_header(alg="none"),
            alg_none_before_signature_form=lambda w: _swap(_unsigned("none")(w), 2, "***")),
    **_rows("malformed", alg_missing=_header(alg=...), alg_number=_header(alg=256),
            alg_list=_header(alg=["ES256"])),
    **_rows("alg_not_allowed", alg_lower_case=_header(alg="es256"), alg_es384=_header(alg="ES384"),
            alg_hs512=_header(alg="HS512"), alg_ps256=_header(alg="PS256"),
            alg_eddsa=_header(alg="EdDSA"), alg_none_with_space=_header(alg="none "),
            alg_empty=_header(alg=""), alg_before_kid=_header(alg="HS384", kid=5)),
    **_rows("alg_mismatch", rs256_naming_the_ec_key=_header(alg="RS256"),
            es256_naming_a_legacy_kid=_header(kid=LEGACY_KID),
            hs256_legacy_secret_naming_the_ec_key=lambda w: _jws(
                {**w.header, "alg": "HS256"}, w.claims(), lambda d: _hs256(LEGACY_SECRET, d))),
    **_rows("crit_unsupported", crit_unknown=_header(crit=["exp"], exp=1),
            crit_empty=_header(crit=[]), crit_b64=_header(crit=["b64"], b64=False),
            crit_before_unknown_kid=_header(crit=["x"], kid="nobody")),
    **_rows("missing_kid", kid_missing=_header(kid=...), kid_null=_header(kid=None),
            jwk_attacker_key_no_kid=_header(True, kid=..., jwk=ATTACKER_HEADERS["jwk"])),
    **_rows("bad_kid", **{f"kid_{name}": _header(kid=kid) for name, kid in BAD_KIDS.items()}),
    **_rows("unknown_kid", kid_unknown=_header(kid="unknown-key-0001"), kid_dots=_header(kid="..")),
    **_rows("bad_typ", typ_jwt=_header(typ="JWT"), typ_missing=_header(typ=...),
            typ_application_jwt=_header(typ="application/jwt"), typ_number=_header(typ=1),
            typ_trailing_space=_header(typ="at+jwt "),
            typ_before_issuer=lambda w: w.sign(w.claims(iss="x"), {**w.header, "typ": "JWT"})),
    **_rows("bad_signature", **{f"{name}_attacker_key_our_kid": _header(True, **{name: value})
                                for name, value in ATTACKER_HEADERS.items()}),
}
ENCODINGS = ("pem", "der", "raw_point", "jwk_json")
HMAC_WITH_PUBLIC_KEY = {  # dual phase: without the EC kid, only the legacy secrets are tried
    **_rows("alg_mismatch", **{f"{e}_ec_kid": _hmac_with_public(e, "ec") for e in ENCODINGS}),
    **_rows("bad_signature", **{f"{e}_no_kid": _hmac_with_public(e, None) for e in ENCODINGS},
            pem_legacy_kid=_hmac_with_public("pem", LEGACY_KID)),
}

# --- step 5: the signature, under the base header (a warm cache skips the header checks)

SIGNATURES = _rows(
    "bad_signature",
    payload_sub_changed=_under_old_signature(sub="2"),
    payload_roles_added=_under_old_signature(roles=["admin"]),
    payload_exp_extended=_under_old_signature(exp=lambda w: w.now + 86400),
    flipped_bit_in_r=_resigned(_flip(5)), flipped_bit_in_s=_resigned(_flip(63)),
    all_zero_r_s=_resigned(lambda s: bytes(64)), r_zero=_resigned(lambda s: bytes(32) + s[32:]),
    s_zero=_resigned(lambda s: s[:32] + bytes(32)),
    r_s_curve_order=_resigned(lambda s: P256_ORDER.to_bytes(32, "big") * 2),
    r_leading_zero_forged=_resigned(lambda s: bytes([0, s[1] ^ 0xFF]) + s[2:]),
    length_63=_resigned(lambda s: s[:63]), length_65=_resigned(lambda s: s + b"\x00"),
    length_32=_resigned(lambda s: s[:32]),
    der_encoded=lambda w: _swap(w.base, 2, b64(w.private.sign(
        ".".join(w.parts[:2]).encode(), ec.ECDSA(SHA256())))),
    # Issue 16 item 10: (r, n - s) verifies under plain ECDSA; one text per token (low S).
    high_s_twin=_resigned(_high_s_twin),
    attacker_key_our_kid=lambda w: w.sign(key=w.attacker),
    over_payload_only=lambda w: _swap(w.base, 2, b64(_es256(w.private, w.parts[1].encode()))),
    of_another_token=lambda w: _swap(w.sign(), 2, w.parts[2]),
    signature_before_claims=lambda w: _swap(w.sign(w.claims(iss="x", exp=1)), 2, w.parts[2]),
)

# --- step 5: claims, signed by the real key under the base header

REQUIRED = ("iss", "aud", "sub", "exp", "nbf", "iat", "jti", "client_id", "sid", "scope", "roles",
            "auth_time", "amr", "acr")
BAD_TYPES: dict[str, dict[str, Any]] = {
    "iss_number": {"iss": 1}, "aud_number": {"aud": 1}, "exp_true": {"exp": True},
    "exp_string": {"exp": "2000000000"}, "exp_null": {"exp": None}, "nbf_false": {"nbf": False},
    "exp_beyond_float": {"exp": 10**400}, "iat_true": {"iat": True},
    "nbf_beyond_float": {"nbf": -(10**400)}, "auth_time_beyond_float": {"auth_time": 10**400},
    "sub_fullwidth_one": {"sub": "\uff11"}, "sub_leading_zero": {"sub": "01"},
    "sub_zero": {"sub": "0"}, "sub_beyond_32_bits": {"sub": str(2**31)},
    "auth_time_string": {"auth_time": "now"}, "sub_number": {"sub": 1},
    "sub_not_digits": {"sub": "alice"}, "sub_superscript_two": {"sub": "²"},
    "jti_number": {"jti": 7}, "sid_float": {"sid": 1.5}, "client_id_null": {"client_id": None},
    "scope_list": {"scope": ["notes:read"]}, "acr_number": {"acr": 2},
    "roles_string": {"roles": "admin"}, "roles_non_string": {"roles": ["admin", 1]},
    "amr_null_member": {"amr": ["pwd", None]}, "amr_object": {"amr": {"pwd": True}},
}
FLOAT_OVERFLOW = _rows(  # valid JSON numbers that Python reads as infinity
    "bad_claim_type", **{f"{name}_1e400": lambda w, name=name: w.sign(
        _raw(w, "payload").replace(f'"{name}":{w.claims()[name]}', f'"{name}":1e400'))
        for name in ("exp", "iat", "auth_time")})
CLAIMS = {
    **_rows("missing_claim", **{f"missing_{name}": _claims(**{name: ...}) for name in REQUIRED}),
    **_rows("bad_claim_type", **{name: _claims(**change) for name, change in BAD_TYPES.items()}),
    **_rows("bad_issuer", iss_other=_claims(iss="https://attacker.example"),
            iss_trailing_slash=_claims(iss="http://localhost/"),
            iss_before_exp=_claims(iss="x", exp=1)),
    **_rows("bad_audience", aud_other=_claims(aud="https://attacker.example/api"),
            aud_issuer=_claims(aud="http://localhost"), aud_list_without_ours=_claims(aud=["a"]),
            aud_list_empty=_claims(aud=[]), aud_list_with_non_string=_claims(aud=[AUDIENCE, 1])),
    **_rows("expired", exp_at_leeway_edge=_at(-30, "exp"), exp_past_leeway=_at(-31, "exp")),
    **_rows("not_yet_valid", nbf_past_leeway=_at(31, "nbf")),
    **_rows("issued_in_future", iat_past_leeway=_at(31, "iat")),  # nbf stays at now
}
REFUSALS = {f"{family}-{name}": row for family, table in (
    ("form", FORM), ("base64", BASE64), ("json", JSON_SHAPES), ("header", HEADERS),
    ("hmac_public_key", HMAC_WITH_PUBLIC_KEY), ("signature", SIGNATURES), ("claims", CLAIMS),
    ("float_overflow", FLOAT_OVERFLOW),
) for name, row in table.items()}


@pytest.mark.parametrize(("forge", "reason"), REFUSALS.values(), ids=REFUSALS)
def test_refused_with_its_reason_cold_and_warm(world: World, forge: Forge, reason: str) -> None:
    assert _verdicts(world, forge) == [reason] * 4


@pytest.mark.parametrize("forge", [
    _old_system_token, _hmac_with_public("pem", "ec"),
    lambda w: _jws({"alg": "HS256", "kid": LEGACY_KID, "typ": "at+jwt"}, w.claims(),
                   lambda d: _hs256(LEGACY_SECRET, d)),
], ids=["old_system_token", "ec_public_key_as_secret", "legacy_kid"])
def test_hs256_in_the_asymmetric_phase_is_legacy_disabled(asymmetric: World, forge: Forge) -> None:
    assert _verdicts(asymmetric, forge) == ["legacy_disabled"] * 4


def _old_system(w: World, **claims: Any) -> str:
    return _jws({"alg": "HS256", "typ": "JWT"}, {"exp": w.now + 600, **claims},
                lambda d: _hs256(LEGACY_SECRET, d))


@pytest.mark.parametrize("subject", ["\u00b2", "\uff11", "0", "00", str(2**31), "9" * 40])
def test_legacy_subject_that_is_no_user_id_is_unknown_subject(world: World, subject: str) -> None:
    # The old system's token is genuine; its subject just names no user we can look up
    # (str.isdigit admits "²", which int() refuses, and "１", which int() reads as 1).
    token = _old_system(world, sub=subject)
    assert [_verdict(world, token) for _ in range(2)] == ["unknown_subject"] * 2


@pytest.mark.parametrize("claims", [{"sub": "01"}, {"sub": 1}, {"sub": "1", "sid": "theirs"}],
                         ids=["zero_padded_id", "number", "with_their_own_sid"])
def test_old_system_tokens_map_to_the_user(world: World, claims: dict[str, Any]) -> None:
    # Its ids may be padded, and its sid is not one of our sessions: the old
    # system's claim rules apply, whatever claims the token happens to carry.
    assert world.uid == 1
    token = _old_system(world, **claims)
    assert [_verdict(world, token) for _ in range(2)] == [None] * 2


# --- what must still pass

VALID: dict[str, Forge] = {
    "exp_just_inside_leeway": _at(-29, "exp"), "nbf_just_inside_leeway": _at(30, "nbf"),
    "iat_just_inside_leeway": _at(30, "iat"), "exp_float": _claims(exp=lambda w: w.now + 60.5),
    "aud_list_with_ours": _claims(aud=["https://other.example", AUDIENCE]),
    "typ_upper_case": _header(typ="AT+JWT"), "typ_media_type": _header(typ="application/at+jwt"),
    "unknown_header_member": _header(foo="bar"),
    "attacker_keys_in_headers_ignored": _header(**ATTACKER_HEADERS),
    # RFC 7515 §4: whitespace is allowed around and inside the JSON.
    "whitespace_in_json": lambda w: w.sign(" " + json.dumps(w.claims(), indent=1) + "\n",
                                           "\t" + json.dumps(w.header) + " "),
    "exactly_the_size_cap": lambda w: _sized(w, 8192),
    "header_nested_at_the_limit": lambda w: w.sign(header=_nested_member(_raw(w, "header"), 31)),
    "hs256_payload_nested_at_the_limit": lambda w: _jws(
        {"alg": "HS256", "typ": "JWT"}, _nested_member(_old_claims(w), 31),
        lambda d: _hs256(LEGACY_SECRET, d)),
    "legacy_hs256_from_the_old_system": _old_system_token,
}


@pytest.mark.parametrize("forge", VALID.values(), ids=VALID)
def test_accepted_cold_and_warm(world: World, forge: Forge) -> None:
    assert _verdicts(world, forge) == [None] * 4


# app.core.keyring builds the DER itself when r and s both start non-zero and falls back
# to encode_dss_signature otherwise: every shape must verify, as joserfc agrees. A low S
# never has its top bit set (s <= n/2 < 2**255); its high twin always has.
DER_SHAPES: dict[str, Callable[[bytes], bool]] = {
    "r_leading_zero": lambda s: s[0] == 0, "s_leading_zero": lambda s: s[32] == 0,
    "r_high_bit": lambda s: s[0] >= 0x80 and s[32] > 0,
    "both_low_non_zero": lambda s: 0 < s[0] < 0x80 and 0 < s[32] < 0x80,
}


@pytest.mark.parametrize("shape", DER_SHAPES.values(), ids=DER_SHAPES)
def test_every_es256_signature_shape_verifies(world: World, shape: Callable[[bytes], bool]) -> None:
    head, body = _seg(world.header), _seg(world.claims(jti="shape"))
    signatures = (_es256(world.private, f"{head}.{body}".encode()) for _ in range(20_000))
    token = f"{head}.{body}.{b64(next(s for s in signatures if shape(s)))}"
    public = ECKey.import_key(world.private.public_key())
    jws.deserialize_compact(token, public, algorithms=["ES256"])
    assert _verdicts(world, lambda w: token) == [None] * 4
    tampered = _swap(token, 1, _seg(world.claims(jti="shape", sub="2")))
    assert _verdicts(world, lambda w: tampered) == ["bad_signature"] * 4
    twin = _swap(token, 2, b64(_high_s_twin(_decoded(token, 2))))
    jws.deserialize_compact(twin, public, algorithms=["ES256"])  # plain ECDSA takes it
    assert _verdicts(world, lambda w: twin) == ["bad_signature"] * 4


def test_every_token_tessera_signs_has_a_low_s(world: World) -> None:
    """Issue 16 item 10: ECDSA gives a high S half the time; Tessera never issues one."""
    with world.app.app_context():
        signer = snapshot().signer
    assert signer is not None and signer.alg == "ES256"
    tokens = [sign_token(signer, world.claims(jti=f"low-s-{n}")) for n in range(200)]
    login = world.app.test_client().post("/auth/login", json={"username": "target",
                                                              "password": PASSWORD})
    assert login.status_code == 200, login.get_json()
    tokens.append(login.get_json()["access_token"])
    assert all(_s(_decoded(token, 2)) <= P256_ORDER // 2 for token in tokens)
    assert _verdict(world, tokens[-1]) is None


# --- the caches: a header that passed once vouches for nothing else

CACHED_HEADER_FORGERIES: dict[str, Callable[[World, str], str]] = {
    "payload_changed_under_old_signature": lambda w, t: _swap(t, 1, _seg(w.claims(roles=["x"]))),
    "signature_flipped": lambda w, t: _swap(t, 2, b64(_flip(40)(_decoded(t, 2)))),
    "signature_zero": lambda w, t: _swap(t, 2, b64(bytes(64))),
    "signature_of_a_sibling": lambda w, t: _swap(
        w.sign(header=json.loads(_decoded(t, 0))), 2, t.split(".")[2]),
    "signed_by_the_attacker": lambda w, t: w.sign(header=json.loads(_decoded(t, 0)),
                                                  key=w.attacker),
}


@pytest.mark.parametrize(("extra", "forgery"), [
    *(({}, forgery) for forgery in CACHED_HEADER_FORGERIES.values()),
    *(({name: value}, CACHED_HEADER_FORGERIES["signed_by_the_attacker"])
      for name, value in ATTACKER_HEADERS.items()),
], ids=[*CACHED_HEADER_FORGERIES, *(f"{name}_signed_by_the_attacker" for name in ATTACKER_HEADERS)])
def test_cached_header_does_not_vouch_for_forgeries(
    world: World, extra: dict[str, Any], forgery: Callable[[World, str], str],
) -> None:
    cache = _fresh_cache(world, warm=False)
    valid = _header(**extra)(world)
    assert _verdict(world, valid) is None  # any attacker member is ignored; the header is cached
    head = valid.split(".")[0]
    with world.app.app_context():
        assert cache.headers.resolved(head.encode(), snapshot(), ACCESS_PROFILE) is not None
    forged = forgery(world, valid)
    assert forged.split(".")[0] == head and forged != valid
    assert [_verdict(world, forged), _verdict(world, forged)] == ["bad_signature"] * 2
    assert len(cache) == 1
    assert _verdict(world, valid) is None  # the forgery disturbed nothing


def test_cached_header_and_token_refused_once_their_key_is_revoked(
    make_app: Callable[..., Flask], clock: FrozenClock,
) -> None:
    w = _world(make_app(clock=clock, KEYRING_REFRESH=3600), clock)
    cache = _fresh_cache(w, warm=True)
    sibling = w.sign(w.claims(jti="never-seen"))  # the same header segment, not yet verified
    with w.app.app_context():
        before = snapshot()
        keyops.revoke_signing_key(w.kid)
        assert snapshot() is not before  # and the cached header no longer resolves under it
        assert cache.headers.resolved(w.parts[0].encode(), snapshot(), ACCESS_PROFILE) is None
    for token in (w.base, sibling):
        assert [_verdict(w, token), _verdict(w, token)] == ["key_revoked"] * 2
    assert len(cache) == 0


def test_time_checks_run_on_every_use_of_a_cached_token(world: World) -> None:
    cache = VerifiedTokenCache()
    with world.app.app_context():
        snap, policy = snapshot(), token_policy()
    short = world.sign(world.claims(exp=world.now + 60))
    early = world.sign(world.claims(nbf=world.now + 40))
    verify_cached(short, snap, policy, world.now, cache, TokenEntry)
    assert len(cache) == 1
    for token, at, reason in ((short, world.now + 90, "expired"),
                              (early, world.now, "not_yet_valid")):
        with pytest.raises(TokenRejected, match=f"^{reason}$"):
            verify_cached(token, snap, policy, at, cache, TokenEntry)
    assert len(cache) == 0  # both dropped: neither may be served from the cache later
    entry = verify_cached(early, snap, policy, world.now + 11, cache, TokenEntry)
    assert entry.subject == str(world.uid)
