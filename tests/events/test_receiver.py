"""The receiver's rules against Tessera's own: the denylist's verdicts equal Tessera's
(``app.core.revocation``) on every boundary, and every SET Tessera emits is read back as
the entry Tessera wrote, while a SET that is not exactly Tessera's is refused."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tessera_verifier.denylist import Denylist
from tessera_verifier.fetch import Reply
from tessera_verifier.jwks import JwksCache
from tessera_verifier.secevent import SetRejected, verify_set

from app.core.revocation_rules import RevocationQuery, verdict
from app.core.tokens import sign_token
from app.security import snapshot
from app.security.revocation import revocations
from tests.events.support import make_receiver, poll
from tests.support.actions import AuthActions
from tests.support.tokens import make_user

CUTOFF = 1_800_000_000  # a user cutoff's second


def _tessera(entries: dict[str, str], claims: dict[str, Any], legacy: bool,
             token_hash: str | None) -> str | None:
    """Tessera's verdict for the same entries and token."""
    user = claims.get("sub")
    query = RevocationQuery.of(jti=claims.get("jti"), sid=claims.get("sid"),
                               user_id=int(user) if user else None, iat=claims.get("iat"),
                               token_hash=token_hash, kid="k1", legacy=legacy)
    values = {"kid": "k1", "jti": claims.get("jti"), "tokenhash": token_hash,
              "sid": claims.get("sid"), "user": user, "legacyuser": user}
    hits = [(kind, CUTOFF * 1_000_000 + 250_000 if kind in ("user", "legacyuser") else 1)
            for kind, value in query.pairs if kind in entries and entries[kind] == values[kind]]
    return verdict(query, hits)


@pytest.mark.parametrize(("kinds", "iat", "with_sid", "legacy", "with_jti"), list(itertools.product(
    [(), ("kid",), ("jti",), ("tokenhash",), ("sid",), ("user",), ("legacyuser",),
     ("user", "sid"), ("legacyuser", "user")],
    [CUTOFF - 1, CUTOFF, CUTOFF + 1, None], [True, False], [True, False], [True, False])))
def test_the_denylist_decides_as_tessera_does(kinds, iat, with_sid, legacy, with_jti) -> None:  # type: ignore[no-untyped-def]
    import hashlib
    token = "header.payload.signature"
    token_hash = hashlib.sha256(token.encode()).hexdigest() if not with_jti else None
    claims: dict[str, Any] = {"sub": "42", **({"iat": iat} if iat is not None else {}),
                              **({"sid": "s1"} if with_sid else {}),
                              **({"jti": "j1"} if with_jti else {})}
    entries = {"kid": "k1", "jti": "j1", "tokenhash": token_hash or "-", "sid": "s1",
               "user": "42", "legacyuser": "42"}
    chosen = {kind: entries[kind] for kind in kinds}
    denylist = Denylist(clock=lambda: CUTOFF + 10)
    for kind, value in chosen.items():
        denylist.add(kind, value, until=CUTOFF + 900,
                     cutoff=CUTOFF if kind in ("user", "legacyuser") else 0)
    header = {"alg": "HS256" if legacy else "ES256", "kid": "k1"}
    assert denylist.check(claims, header, token) == _tessera(chosen, claims, legacy, token_hash)


def test_entries_keep_the_latest_cutoff_expire_and_survive_a_restart(tmp_path: Path) -> None:
    now = [1000.0]
    denylist = Denylist(clock=lambda: now[0])
    denylist.add("user", "7", until=2000, cutoff=1500)
    denylist.add("user", "7", until=1800, cutoff=1200)  # older and shorter: changes nothing
    denylist.add("jti", "j", until=1100)
    assert denylist.check({"sub": "7", "iat": 1400, "sid": "s"}, {}) == "user_revoked"
    denylist.save(tmp_path / "state.json")
    restored = Denylist(clock=lambda: now[0])
    assert restored.load(tmp_path / "state.json") == 2
    assert restored.check({"jti": "j", "sub": "8", "iat": 1}, {}) == "token_revoked"
    now[0] = 1200
    assert restored.check({"jti": "j", "sub": "8", "iat": 1}, {}) is None  # past its life
    assert restored.prune() == 1 and len(restored) == 1


@pytest.fixture
def app(make_app, clock):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock)
    make_user(app, "alice")
    return app


def _jwks(app) -> JwksCache:  # type: ignore[no-untyped-def]
    def get(url: str, headers: dict[str, str], timeout: float) -> Reply:
        answer = app.test_client().get("/.well-known/jwks.json")
        return Reply(200, {"cache-control": "max-age=300"}, answer.get_data())
    return JwksCache("http://localhost/.well-known/jwks.json", get=get, background=False)


def _read_all(app, creds, clock) -> list[tuple[str, str, float, int]]:  # type: ignore[no-untyped-def]
    sets = poll(app, creds).get_json()["sets"]
    return [verify_set(token, _jwks(app), issuer="http://localhost", audience=creds[0],
                       now=clock().timestamp())[0] for token in sets.values()]


def test_every_event_reads_back_as_the_entry_tessera_wrote(app, clock) -> None:  # type: ignore[no-untyped-def]
    creds = make_receiver(app)
    with app.app_context():
        now = clock()
        until = now + timedelta(minutes=15)
        service = revocations()
        service.revoke_jti("j1", until, now, "admin")
        service.revoke_token_hash("ab" * 32, until, now, "rfc7009")
        service.revoke_session("s1", until, now, "logout")
        service.revoke_user(1, now, until, "user_disabled")
        service.revoke_user(1, now, until, "temporary_password")
        service.revoke_legacy_user(1, now, until, "password_changed")
        service.revoke_kid("k1", until, now, "key_revoked")
    second, end = int(now.timestamp()), int(until.timestamp())
    assert sorted(_read_all(app, creds, clock)) == sorted([
        ("jti", "j1", end, 0), ("tokenhash", "ab" * 32, end, 0), ("sid", "s1", end, 0),
        ("user", "1", end, second), ("user", "1", end, second),
        ("legacyuser", "1", end, second), ("kid", "k1", end, 0)])


def _one_set(app, creds) -> str:  # type: ignore[no-untyped-def]
    AuthActions(app.test_client()).login()
    with app.app_context():
        now = app.extensions["tessera.clock"]()
        revocations().revoke_jti("j1", now + timedelta(minutes=5), now, "admin")
    (token,) = poll(app, creds).get_json()["sets"].values()
    return str(token)


def _resign(app, token: str, typ: str = "secevent+jwt", **changes: Any) -> str:  # type: ignore[no-untyped-def]
    import base64
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    payload.update(changes)
    with app.app_context():
        signer = snapshot().signer
        assert signer is not None
        return sign_token(signer, payload, typ=typ)


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda app, t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"), "bad_signature"),
    (lambda app, t: _resign(app, t, typ="at+jwt"), "wrong_typ"),
    (lambda app, t: _resign(app, t, iss="http://elsewhere"), "wrong_issuer"),
    (lambda app, t: _resign(app, t, aud="svc-other"), "wrong_audience"),
    (lambda app, t: _resign(app, t, iat="now"), "bad_claims"),
    (lambda app, t: _resign(app, t, events={}), "bad_event"),
    (lambda app, t: _resign(app, t, events={"urn:x": {"event_timestamp": 1,
                                                      "revocation_expires_at": 2}}),
     "unknown_event"),
    (lambda app, t: "a.b", "malformed"),
])
def test_a_set_that_is_not_exactly_tesseras_is_refused(app, clock, mutate, reason) -> None:  # type: ignore[no-untyped-def]
    creds = make_receiver(app)
    token = mutate(app, _one_set(app, creds))
    with pytest.raises(SetRejected) as refused:
        verify_set(token, _jwks(app), issuer="http://localhost", audience=creds[0],
                   now=clock().timestamp())
    assert refused.value.reason == reason
