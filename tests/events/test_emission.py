"""Each revocation becomes a SET for every receiver, in the revocation's transaction
(issue 23): logout, revoke-all, a disabled user, a key, a token by jti."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from sqlalchemy import func, select

from app.core import security_events as se
from app.extensions import db
from app.models import SecurityEvent
from app.security.revocation import revocations
from tests.events.support import make_receiver, poll
from tests.support.actions import AuthActions
from tests.support.tokens import bearer, make_user


@pytest.fixture
def app(make_app, clock):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock)
    make_user(app, "root", roles=("admin",))
    make_user(app, "alice")
    return app


def _jwks(app) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return app.test_client().get("/.well-known/jwks.json").get_json()  # type: ignore[no-any-return]


def _decode(app, token: str, audience: str) -> tuple[dict[str, Any], dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Verify a SET with PyJWT against Tessera's JWKS, as an independent receiver would."""
    header = jwt.get_unverified_header(token)
    key = next(k for k in _jwks(app)["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], audience=audience,
                        issuer="http://localhost",
                        options={"require": ["iss", "aud", "iat", "jti"], "verify_exp": False})
    return header, claims


def _all_sets(app, creds) -> list[tuple[dict[str, Any], dict[str, Any]]]:  # type: ignore[no-untyped-def]
    answer = poll(app, creds, maxEvents=100)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["moreAvailable"] is False
    return [_decode(app, token, creds[0]) for token in body["sets"].values()]


def _events(decoded) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:  # type: ignore[no-untyped-def]
    out = []
    for _, claims in decoded:
        ((event_type, payload),) = claims["events"].items()
        out.append((event_type, claims["sub_id"], payload))
    return out


def test_every_set_verifies_with_pyjwt_and_has_the_rfc_8417_claims(app, clock) -> None:  # type: ignore[no-untyped-def]
    creds = make_receiver(app)
    auth = AuthActions(app.test_client())
    token = auth.login().get_json()["access_token"]
    unverified = jwt.decode(token, options={"verify_signature": False})
    assert auth.logout().status_code in (200, 204)
    decoded = _all_sets(app, creds)
    assert len(decoded) == 2  # the access token and its session
    jtis = set()
    for header, claims in decoded:
        assert header["typ"] == "secevent+jwt" and header["alg"] == "ES256"
        assert claims["iss"] == "http://localhost" and claims["aud"] == creds[0]
        assert isinstance(claims["iat"], int) and abs(claims["iat"] - clock().timestamp()) < 2
        assert isinstance(claims["events"], dict) and len(claims["events"]) == 1
        assert "exp" not in claims and "sub" not in claims  # RFC 8417 §2.2: no token use
        jtis.add(claims["jti"])
    assert len(jtis) == 2
    by_type = {t: (sub, payload) for t, sub, payload in _events(decoded)}
    assert by_type[se.TOKEN_REVOKED][0] == {"format": "jwt_id", "iss": "http://localhost",
                                            "jti": unverified["jti"]}
    assert by_type[se.SESSION_REVOKED][0] == {
        "format": "complex", "session": {"format": "opaque", "id": unverified["sid"]}}
    payload = by_type[se.TOKEN_REVOKED][1]
    assert payload["revocation_expires_at"] >= unverified["exp"]
    assert payload["reason_admin"] == {"en": "logout"}


def test_revoke_all_disable_and_key_revocation_use_their_event_types(app, clock) -> None:  # type: ignore[no-untyped-def]
    creds = make_receiver(app)
    root = bearer(AuthActions(app.test_client()).login(username="root").get_json()["access_token"])
    alice = AuthActions(app.test_client())
    alice_token = alice.login().get_json()["access_token"]
    alice_id = jwt.decode(alice_token, options={"verify_signature": False})["sub"]
    client = app.test_client()
    ended = alice.client.post("/auth/logout-all", headers=bearer(alice_token))
    assert ended.status_code in (200, 204)
    poll(app, creds, ack=[], maxEvents=0)
    first = _events(_all_sets(app, creds))
    user_events = [(t, s, p) for t, s, p in first if s.get("format") == "iss_sub"]
    assert [(t, s) for t, s, _ in user_events] == [
        (se.SESSION_REVOKED, {"format": "iss_sub", "iss": "http://localhost", "sub": alice_id})]
    assert user_events[0][2]["event_timestamp"] == int(clock().timestamp())

    assert client.patch(f"/admin/api/users/{alice_id}", headers=root,
                        json={"disabled": True}).status_code == 200
    kid = jwt.get_unverified_header(alice_token)["kid"]
    assert client.post(f"/admin/api/keys/{kid}/revoke", headers=root).status_code == 200
    types = {t for t, _, _ in _events(_all_sets(app, creds))}
    assert {se.ACCOUNT_DISABLED, se.KEY_REVOKED} <= types
    key_event = next(p for t, _, p in _events(_all_sets(app, creds)) if t == se.KEY_REVOKED)
    assert key_event["kid"] == kid


def test_an_event_is_emitted_only_if_the_revocation_commits(app, clock) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        now = clock()
        assert revocations().claim("jti", "rolled-back", now, now, "test")
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(SecurityEvent)) == 0
        assert revocations().claim("jti", "kept", now, now, "test")
        db.session.commit()
        rows = db.session.scalars(select(SecurityEvent)).all()
        assert [(r.kind, r.value, r.event_type) for r in rows] == [
            ("jti", "kept", se.TOKEN_REVOKED)]


def test_events_live_as_long_as_their_revocation_and_are_purged_after(app, clock) -> None:  # type: ignore[no-untyped-def]
    creds = make_receiver(app)
    AuthActions(app.test_client()).login()
    with app.app_context():
        now = clock()
        revocations().revoke_jti("short", now + __import__("datetime").timedelta(seconds=60), now)
    assert len(poll(app, creds).get_json()["sets"]) == 1
    clock.advance(61)
    assert poll(app, creds).get_json()["sets"] == {}  # expired: nothing left to revoke
    result = app.test_cli_runner().invoke(args=["revocations", "purge"])
    assert "purged 1 expired security event(s)" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SecurityEvent)) == 0


def test_emitted_counter(app) -> None:  # type: ignore[no-untyped-def]
    auth = AuthActions(app.test_client())
    auth.login()
    auth.logout()
    text = app.test_client().get("/metrics").get_data(as_text=True)
    line = next(row for row in text.splitlines()
                if row.startswith("tessera_security_events_emitted_total")
                and "session-revoked" in row)
    assert json.loads(line.rsplit(" ", 1)[1]) == 1.0
