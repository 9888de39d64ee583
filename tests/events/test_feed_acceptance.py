"""Issue 23's acceptance, end to end: Tessera under gunicorn, a resource server on the
verifier package's feed in a process of its own.

1. logout, revoke-all, a disabled user and a key revocation are refused by the
   resource server within one second, with no request to Tessera per protected request;
2. a restarted resource server catches up before it is ready and refuses every revoked
   token before it accepts any request;
3. Tessera unreachable: after the bound, sensitive routes follow the policy (refuse, or
   introspect); when Tessera is back the receiver catches up.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import SecurityEventAck
from app.security.revocation import revocations
from tests.events.stack import (
    ResourceServer,
    reason,
    refused_within,
    requested_paths,
    tessera_server,
)
from tests.events.support import make_receiver
from tests.support.http import call, login_token
from tests.support.relay import Relay
from tests.support.servers import wait_until
from tests.support.tokens import PASSWORD, bearer, make_user

pytestmark = pytest.mark.slow


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    return make_app(COOKIE_SECURE=False)


def _acks(app) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(SecurityEventAck)))


def _users(app, *names: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    ids = {name: make_user(app, name) for name in names}
    ids["root"] = make_user(app, "root", roles=("admin",))
    return ids


def test_revocations_reach_the_resource_server_within_a_second(  # type: ignore[no-untyped-def]
        app, database_url, redis_url, tmp_path) -> None:
    ids = _users(app, "alice", "bob", "carol", "dave")
    creds = make_receiver(app)
    tessera = tessera_server(database_url, tmp_path / "srv", workers=2, REDIS_URL=redis_url,
                             SECURITY_EVENTS_LONG_POLL="20")
    relay = Relay(tessera.port).start()
    rs = ResourceServer(f"http://127.0.0.1:{relay.port}", creds, tmp_path / "rs.json").start()
    try:
        wait_until(rs.ready, timeout=10)
        tokens = {name: login_token(tessera.url, name, PASSWORD)
                  for name in ("alice", "bob", "carol", "dave")}
        bob_second = login_token(tessera.url, "bob", PASSWORD)
        root = bearer(login_token(tessera.url, "root", PASSWORD))
        served = 0
        for token in [*tokens.values(), bob_second]:
            assert rs.get("/notes", token).status == 200
            served += 1
        kid = jwt.get_unverified_header(tokens["dave"])["kid"]
        actions = [
            ("alice", ["session_revoked", "token_revoked"],
             lambda: call("POST", tessera.url + "/auth/logout", headers=bearer(tokens["alice"]))),
            ("bob", ["user_revoked", "session_revoked"],
             lambda: call("POST", f"{tessera.url}/admin/api/users/{ids['bob']}/revoke-tokens",
                          headers=root)),
            ("carol", ["user_revoked", "session_revoked"],
             lambda: call("PATCH", f"{tessera.url}/admin/api/users/{ids['carol']}",
                          headers=root, json_body={"disabled": True})),
            ("dave", ["key_revoked"],
             lambda: call("POST", f"{tessera.url}/admin/api/keys/{kid}/revoke", headers=root)),
        ]
        delays = {}
        for name, reasons, act in actions:
            assert rs.get("/notes", tokens[name]).status == 200  # accepted right before
            started = time.monotonic()
            assert act().status in (200, 204)
            delays[name], why = refused_within(rs, tokens[name], started)
            assert why in reasons
            served += 2
            if name == "bob":  # every token of the user, not only the one presented
                assert rs.get("/notes", bob_second).status == 401
        assert max(delays.values()) < 1.0, delays
        for _ in range(20):  # and no request to Tessera for any protected request
            assert rs.get("/notes", tokens["alice"]).status == 401
        paths = Counter(requested_paths(relay))
        assert set(paths) <= {"/ssf/poll", "/.well-known/jwks.json"}, paths
        assert paths["/.well-known/jwks.json"] == 1  # fetched once, at start
        assert served >= 13
    finally:
        rs.kill()
        relay.stop()
        tessera.stop()


def test_a_restarted_resource_server_catches_up_before_it_is_ready(  # type: ignore[no-untyped-def]
        app, database_url, tmp_path) -> None:
    _users(app, "alice", "bob", "carol")
    creds = make_receiver(app)
    tessera = tessera_server(database_url, tmp_path / "srv")
    state = tmp_path / "rs.json"
    rs = ResourceServer(tessera.url, creds, state).start()
    try:
        wait_until(rs.ready, timeout=10)
        before = login_token(tessera.url, "alice", PASSWORD)
        call("POST", tessera.url + "/auth/logout", headers=bearer(before))
        refused_within(rs, before, time.monotonic())
        wait_until(lambda: _acks(app) >= 2, timeout=10)
        rs.kill()  # acknowledged: Tessera will not send these again
        revoked = [login_token(tessera.url, name, PASSWORD) for name in ("bob", "carol")]
        kept = login_token(tessera.url, "carol", PASSWORD)
        for token in revoked:  # emitted while the resource server is down
            assert call("POST", tessera.url + "/auth/logout", headers=bearer(token)).status in (
                200, 204)
        rs.start()
        seen_ready = False
        for _ in range(400):  # no revoked token is ever accepted, not even before ready
            for token in [before, *revoked]:  # 401 revoked, or 503 not ready: never 200
                assert rs.get("/notes", token).status in (401, 503)
            answer = rs.get("/notes", kept)
            if answer.status == 200:
                seen_ready = True
                assert rs.ready()
                break
            assert answer.status == 503 and reason(answer) == "feed_not_ready"
            time.sleep(0.01)
        assert seen_ready
        assert reason(rs.get("/notes", before)) == "token_revoked"  # from its state
    finally:
        rs.kill()
        tessera.stop()


def test_tessera_unreachable_sensitive_routes_follow_the_policy_then_catch_up(  # type: ignore[no-untyped-def]
        app, database_url, tmp_path) -> None:
    _users(app, "alice", "bob")
    creds = make_receiver(app)
    tessera = tessera_server(database_url, tmp_path / "srv", SECURITY_EVENTS_LONG_POLL="1")
    rs = ResourceServer(tessera.url, creds, tmp_path / "rs.json", RS_STALE_AFTER="2").start()
    try:
        wait_until(rs.ready, timeout=10)
        alice = login_token(tessera.url, "alice", PASSWORD)
        bob = login_token(tessera.url, "bob", PASSWORD)
        assert rs.get("/payout", alice).status == 200
        tessera.stop()
        wait_until(lambda: rs.get("/payout", alice).status == 503, timeout=6)
        assert reason(rs.get("/payout", alice)) == "feed_stale"
        assert rs.get("/notes", alice).status == 200  # not sensitive: the denylist as it is
        with app.app_context():  # a revocation made while the stream is down
            now = app.extensions["tessera.clock"]()
            claims = jwt.decode(bob, options={"verify_signature": False})
            revocations().revoke_jti(claims["jti"], now + timedelta(minutes=20), now, "admin")
        tessera.start()
        started = time.monotonic()
        refused_within(rs, bob, started, limit=10)
        wait_until(lambda: rs.get("/payout", alice).status == 200, timeout=10)
    finally:
        rs.kill()
        tessera.stop()


def test_with_the_introspect_policy_a_stale_feed_asks_tessera(  # type: ignore[no-untyped-def]
        app, database_url, tmp_path) -> None:
    from app.core.clients import create_client

    _users(app, "alice")
    creds = make_receiver(app)
    with app.app_context():
        client, secret = create_client(db.session(), "introspector",
                                       app.extensions["tessera.clock"](), ("introspect",))
        introspect_creds = (client.client_id, secret)
    tessera = tessera_server(database_url, tmp_path / "srv", SECURITY_EVENTS_LONG_POLL="1")
    relay = Relay(tessera.port).start()
    rs = ResourceServer(tessera.url, creds, tmp_path / "rs.json", RS_STALE_AFTER="2",
                        RS_POLICY="introspect", RS_POLL_URL=f"http://127.0.0.1:{relay.port}/ssf/poll",
                        RS_INTROSPECT_ID=introspect_creds[0],
                        RS_INTROSPECT_SECRET=introspect_creds[1]).start()
    try:
        wait_until(rs.ready, timeout=10)
        alice = login_token(tessera.url, "alice", PASSWORD)
        relay.stop()  # the stream breaks; introspection still reaches Tessera
        time.sleep(2.5)
        assert rs.get("/payout", alice).status == 200  # Tessera says active
        call("POST", tessera.url + "/auth/logout", headers=bearer(alice))
        assert reason(rs.get("/payout", alice)) == "revoked"  # no feed: introspected
        assert rs.get("/notes", alice).status == 200  # not sensitive: the stale denylist
    finally:
        rs.kill()
        tessera.stop()
