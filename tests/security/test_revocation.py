"""Revocation against a real redis-server and the database (SPEC §6, issue 5)."""

from __future__ import annotations

import logging

import pytest

from app.core.revocation import EPOCH_KEY, PREFIX
from app.extensions import db
from app.models import Revocation
from app.security.revocation import revocations, revoke_user_tokens
from tests.support.actions import AuthActions
from tests.support.tokens import make_user


def _calls(stats_client) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Commands the server processed, by name, except our own INFO."""
    stats = stats_client.info("commandstats")
    return {k: int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"}


@pytest.fixture(params=["redis", "database"])
def store(request, make_app):  # type: ignore[no-untyped-def]
    """The same behaviour with Redis as the hot path and with the database alone."""
    overrides = {"COOKIE_SECURE": False}
    if request.param == "redis":
        overrides["REDIS_URL"] = request.getfixturevalue("redis_url")
    app = make_app(**overrides)
    make_user(app, "alice")
    make_user(app, "bob")
    return app


def _login(app, username: str = "alice") -> tuple[AuthActions, str]:  # type: ignore[no-untyped-def]
    auth = AuthActions(app.test_client())
    response = auth.login(username=username)
    assert response.status_code == 200
    return auth, response.get_json()["access_token"]


def _claims(token: str) -> dict:  # type: ignore[type-arg]
    import jwt

    return jwt.decode(token, options={"verify_signature": False})


def test_revoked_token_session_user_are_refused_next_request(store) -> None:  # type: ignore[no-untyped-def]
    alice, token = _login(store)
    same_session_token = alice.refresh().get_json()["access_token"]
    other, other_token = _login(store)
    bob, bob_token = _login(store, "bob")

    with store.test_request_context():
        claims = _claims(token)
        from datetime import UTC, datetime

        revocations().revoke_jti(claims["jti"], datetime.fromtimestamp(claims["exp"], UTC),
                                 datetime.now(UTC))
    assert alice.me(token).status_code == 401
    assert alice.me(same_session_token).status_code == 200  # only that token

    with store.test_request_context():
        from app.models import AuthSession
        from app.security.revocation import revoke_session

        revoke_session(db.session.get(AuthSession, _claims(same_session_token)["sid"]),
                       reason="test")
    assert alice.me(same_session_token).status_code == 401
    assert other.me(other_token).status_code == 200  # another session of the same user

    with store.test_request_context():
        revoke_user_tokens(int(_claims(other_token)["sub"]), reason="test")
    assert other.me(other_token).status_code == 401
    assert bob.me(bob_token).status_code == 200  # other users unaffected


def _delta(stats, before) -> dict[str, int]:  # type: ignore[no-untyped-def]
    after = _calls(stats)
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def test_one_redis_round_trip_per_check_then_none(make_app, redis_url, redis_server) -> None:  # type: ignore[no-untyped-def]
    app = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False)
    make_user(app, "alice")
    warm_auth, warm = _login(app)
    for _ in range(2):  # the first check finds Redis empty and rebuilds it
        assert warm_auth.me(warm).status_code == 200
    auth, token = _login(app)  # a new jti and sid: unknown to the mirror
    stats = redis_server.client()  # one connection, so its own set-up is not counted
    before = _calls(stats)
    assert auth.me(token).status_code == 200
    assert _delta(stats, before) == {"cmdstat_mget": 1}  # one round trip, kept by the mirror
    before = _calls(stats)
    for _ in range(5):
        assert auth.me(token).status_code == 200
    assert _delta(stats, before) == {}  # steady state: no round trip at all (SPEC §10)
    # A revocation invalidates the mirror: the very next check is refused.
    other = AuthActions(app.test_client())
    assert other.client.post("/auth/logout-all", headers={"Authorization": f"Bearer {token}"}
                             ).status_code == 200
    assert auth.me(token).status_code == 401


def test_without_the_mirror_every_check_is_one_mget(make_app, redis_url, redis_server) -> None:  # type: ignore[no-untyped-def]
    app = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False, REVOCATION_MIRROR=False)
    make_user(app, "alice")
    auth, token = _login(app)
    assert auth.me(token).status_code == 200  # the first check may rebuild Redis
    stats = redis_server.client()
    before = _calls(stats)
    for _ in range(3):
        assert auth.me(token).status_code == 200
    assert _delta(stats, before) == {"cmdstat_mget": 3}
    assert app.extensions["tessera.revocation"].state.mirror is None


def test_mirror_is_honoured_across_processes_with_warm_caches(make_app, redis_url) -> None:  # type: ignore[no-untyped-def]
    """Two apps (two mirrors) on one Redis: a revocation through one reaches the other at once."""
    first = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False)
    second = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False, keys=False)
    make_user(first, "alice")
    auth, token = _login(first)
    reader = AuthActions(second.test_client())
    for _ in range(3):
        assert reader.me(token).status_code == 200  # warm: verified-token cache and mirror
    assert len(second.extensions["tessera.revocation"].state.mirror) > 0
    assert auth.logout().status_code == 200
    assert reader.me(token).status_code == 401


def test_redis_killed_then_back_empty(make_app, redis_url, redis_server, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="app.core.revocation")
    app = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False)
    make_user(app, "alice")
    revoked_auth, revoked = _login(app)
    valid_auth, valid = _login(app)
    assert revoked_auth.logout().status_code == 200
    assert valid_auth.me(valid).status_code == 200

    redis_server.kill()
    for _ in range(5):
        assert revoked_auth.me(revoked).status_code == 401  # database fallback
        assert valid_auth.me(valid).status_code == 200
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1  # logged once per outage, not per request

    # A revocation made while Redis is down still counts, in the database.
    late_auth, late = _login(app)
    assert late_auth.logout().status_code == 200

    redis_server.start()  # back, and empty
    assert revoked_auth.me(revoked).status_code == 401
    assert late_auth.me(late).status_code == 401
    assert valid_auth.me(valid).status_code == 200
    client = redis_server.client()
    assert client.get(EPOCH_KEY) is not None  # rebuilt from the database
    assert client.exists(PREFIX + "sid:" + _claims(revoked)["sid"])
    assert client.exists(PREFIX + "sid:" + _claims(late)["sid"])


def test_flushall_is_detected_and_repaired(make_app, redis_url, redis_server) -> None:  # type: ignore[no-untyped-def]
    app = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False)
    make_user(app, "alice")
    auth, token = _login(app)
    assert auth.logout().status_code == 200
    redis_server.client().flushall()
    assert auth.me(token).status_code == 401
    assert redis_server.client().exists(PREFIX + "sid:" + _claims(token)["sid"])


def test_fail_closed_answers_503_while_redis_is_down(make_app, redis_url, redis_server) -> None:  # type: ignore[no-untyped-def]
    app = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False, REVOCATION_FAIL_MODE="closed")
    make_user(app, "alice")
    auth, token = _login(app)
    assert auth.me(token).status_code == 200
    redis_server.kill()
    response = auth.me(token)
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"
    redis_server.start()
    assert auth.me(token).status_code == 200


def test_revoke_all_in_the_same_second_as_a_fresh_login(store, clock) -> None:  # type: ignore[no-untyped-def]
    app = store
    earlier = [_login(app) for _ in range(2)]
    with app.test_request_context():
        revoke_user_tokens(1, reason="test")
    fresh_auth, fresh = _login(app)
    # Same wall-clock second for all of them, most likely; the rule must not care.
    for auth, token in earlier:
        assert auth.me(token).status_code == 401
    assert fresh_auth.me(fresh).status_code == 200
    assert _claims(fresh)["iat"] - _claims(earlier[0][1])["iat"] <= 1


def test_revoke_all_boundary_with_a_frozen_second(make_app, clock) -> None:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock)
    make_user(app, "alice")
    before_auth, before = _login(app)
    with app.test_request_context():
        revoke_user_tokens(1, reason="test")
    after_auth, after = _login(app)  # the frozen clock: exactly the same instant
    assert _claims(before)["iat"] == _claims(after)["iat"]
    assert before_auth.me(before).status_code == 401
    assert after_auth.me(after).status_code == 200


def test_redis_keys_carry_ttls_no_longer_than_what_they_revoke(  # type: ignore[no-untyped-def]
        make_app, redis_url, redis_server) -> None:
    app = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False)
    make_user(app, "alice")
    auth, _ = _login(app)
    assert auth.logout().status_code == 200
    with app.app_context():
        rows = {(r.kind, r.value): r for r in db.session.scalars(db.select(Revocation))}
    client = redis_server.client()
    keys = [k.decode() for k in client.keys(PREFIX + "*") if k.decode() != EPOCH_KEY]
    assert keys
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    for key in keys:
        ttl_ms = client.pttl(key)
        assert ttl_ms > 0, key
        kind, value = key[len(PREFIX):].split(":", 1)
        row = rows[({"th": "tokenhash"}.get(kind, kind), value)]
        assert ttl_ms / 1000 <= (row.expires_at - now).total_seconds() + 1


def test_purge_removes_only_dead_rows(make_app) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    app = make_app()
    now = datetime.now(UTC)
    with app.test_request_context():
        service = revocations()
        service.revoke_jti("dead", now - timedelta(seconds=1), now - timedelta(hours=1))
        service.revoke_jti("alive", now + timedelta(hours=1), now)
    result = app.test_cli_runner().invoke(args=["revocations", "purge"])
    assert result.exit_code == 0, result.output
    assert "purged 1" in result.output
    with app.app_context():
        left = {r.value for r in db.session.scalars(db.select(Revocation))}
    assert left == {"alive"}


def test_revoking_twice_is_fine(make_app) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    app = make_app()
    now = datetime.now(UTC)
    with app.test_request_context():
        revocations().revoke_jti("j", now + timedelta(minutes=1), now)
        revocations().revoke_jti("j", now + timedelta(minutes=5), now)
        revocations().revoke_jti("j", now + timedelta(minutes=2), now)
        (row,) = db.session.scalars(db.select(Revocation)).all()
        assert row.expires_at == now + timedelta(minutes=5)  # never shortened


def test_a_revocation_is_seen_by_its_own_process_before_its_invalidation_arrives(
    make_app, redis_url, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The invalidation travels on another connection and may come after the write's
    reply (a TLS proxy, a lossy network): the writing process forgets the keys itself.

    The late arrival is made by holding the mirror's drain back; Redis and the mirror
    are real.
    """
    app = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False)
    make_user(app, "alice")
    auth, token = _login(app)
    for _ in range(3):  # rebuild, then the mirror knows the token's keys
        assert auth.me(token).status_code == 200
    mirror = app.extensions["tessera.revocation"].state.mirror
    assert mirror is not None and len(mirror) > 0
    monkeypatch.setattr(mirror, "_drain", lambda: None)  # invalidations "still on the wire"
    assert auth.client.post("/auth/logout-all", headers={"Authorization": f"Bearer {token}"}
                            ).status_code == 200
    assert auth.me(token).status_code == 401
