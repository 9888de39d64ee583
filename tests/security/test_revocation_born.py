"""A new token's jti key, answered by the Redis mirror without a round trip
(app/core/revocation_born.py), against a real redis-server: every way a revocation of
that jti can be written is still seen by the next check."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import jwt
import pytest

from app.security.revocation import revocations
from tests.support.actions import AuthActions
from tests.support.tokens import make_user


def _calls(stats_client) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Commands the server processed, by name, but our INFO and the mirror's health-check
    PINGs (sent without waiting, once a second)."""
    stats = stats_client.info("commandstats")
    return {k: int(v["calls"]) for k, v in stats.items()
            if k not in ("cmdstat_info", "cmdstat_ping")}


def _delta(stats, before) -> dict[str, int]:  # type: ignore[no-untyped-def]
    after = _calls(stats)
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def _revoke(app, token: str) -> None:  # type: ignore[no-untyped-def]
    claims = jwt.decode(token, options={"verify_signature": False})
    with app.test_request_context():
        revocations().revoke_jti(claims["jti"], datetime.fromtimestamp(claims["exp"], UTC),
                                 datetime.now(UTC))


@pytest.fixture
def rig(make_app, redis_url, redis_server):  # type: ignore[no-untyped-def]
    """An app whose mirror tracks a real Redis; a session born before tracking began,
    with two tokens; the margin 0 (one clock here); the clock past tracking's second."""
    app = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False)
    make_user(app, "alice")
    auth = AuthActions(app.test_client())
    first = auth.login().get_json()["access_token"]
    older = auth.refresh().get_json()["access_token"]  # same session, born before tracking
    for _ in range(2):  # the first check rebuilds Redis and sets tracking up
        assert auth.me(first).status_code == 200
    mirror = app.extensions["tessera.revocation"].state.mirror
    mirror.written.margin = 0.0
    time.sleep(max(0.0, mirror.written.since + 1.05 - time.time()))  # iat: whole seconds
    stats = redis_server.client()
    yield app, auth, older, mirror, stats
    stats.close()


def test_a_token_born_after_tracking_began_needs_no_round_trip(rig) -> None:  # type: ignore[no-untyped-def]
    _, auth, older, _, stats = rig
    before = _calls(stats)
    assert auth.me(older).status_code == 200
    assert _delta(stats, before) == {"cmdstat_mget": 1}  # born before: its jti was asked
    fresh = auth.refresh().get_json()["access_token"]
    before = _calls(stats)
    assert auth.me(fresh).status_code == 200
    assert _delta(stats, before) == {}  # born after, never written: no round trip


def test_a_new_token_revoked_here_is_refused_at_once(rig) -> None:  # type: ignore[no-untyped-def]
    app, auth, _, mirror, _ = rig
    fresh = auth.refresh().get_json()["access_token"]
    assert auth.me(fresh).status_code == 200
    mirror._drain = lambda: None  # the invalidation still "on the wire": the write counts
    _revoke(app, fresh)
    assert auth.me(fresh).status_code == 401


def test_a_new_token_revoked_by_another_process_is_refused_next(make_app, rig) -> None:  # type: ignore[no-untyped-def]
    app, auth, _, _, _ = rig
    other = make_app(REDIS_URL=app.config["REDIS_URL"], COOKIE_SECURE=False, keys=False)
    fresh = auth.refresh().get_json()["access_token"]
    assert auth.me(fresh).status_code == 200
    _revoke(other, fresh)  # heard here only as an invalidation
    assert auth.me(fresh).status_code == 401


def test_no_answer_once_tracking_is_off(rig) -> None:  # type: ignore[no-untyped-def]
    _, auth, _, mirror, stats = rig
    fresh = auth.refresh().get_json()["access_token"]
    other = auth.refresh().get_json()["access_token"]
    assert auth.me(fresh).status_code == 200
    mirror._drop("test")  # as when a connection breaks: the record stops with tracking
    assert mirror.written.since == float("inf")
    before = _calls(stats)
    assert auth.me(other).status_code == 200
    assert _delta(stats, before).get("cmdstat_mget") == 1


def test_a_revocation_made_while_the_mirror_sat_idle_is_heard(make_app, rig) -> None:  # type: ignore[no-untyped-def]
    """Idle past two health-check intervals, the mirror answers nothing until a PING is
    answered; the written record goes on meanwhile, and holds what was written then."""
    app, auth, _, mirror, _ = rig
    other = make_app(REDIS_URL=app.config["REDIS_URL"], COOKIE_SECURE=False, keys=False)
    fresh = auth.refresh().get_json()["access_token"]
    witness = auth.refresh().get_json()["access_token"]
    assert auth.me(witness).status_code == 200
    time.sleep(2.5)  # no check here: unproven
    _revoke(other, fresh)
    assert auth.me(witness).status_code == 200  # sends the PING
    time.sleep(0.2)
    assert auth.me(witness).status_code == 200  # the PONG drained: proven again
    assert mirror.live and mirror.written.since < time.time() - 2
    assert auth.me(fresh).status_code == 401
