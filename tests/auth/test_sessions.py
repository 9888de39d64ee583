"""Refresh rotation, reuse, expiry, CSRF, logout and sessions (SPEC §5, issue 4)."""

from __future__ import annotations

import time

import jwt
import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from tests.support.actions import AuthActions
from tests.support.tokens import PASSWORD, bearer, make_user

LEGACY_SECRET = "old-shared-secret-0123456789-abcdef"


@pytest.fixture
def app(make_app, clock):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock)
    make_user(app, "alice")
    make_user(app, "bob")
    return app


def _auth(app) -> AuthActions:  # type: ignore[no-untyped-def]
    return AuthActions(app.test_client())


def _logged_in(app) -> tuple[AuthActions, str]:  # type: ignore[no-untyped-def]
    auth = _auth(app)
    response = auth.login()
    assert response.status_code == 200
    return auth, response.get_json()["access_token"]


def test_refresh_rotates_many_times(app, clock) -> None:  # type: ignore[no-untyped-def]
    auth, _ = _logged_in(app)
    seen = {auth.refresh_token}
    for _ in range(6):
        clock.advance(60)
        response = auth.refresh()
        assert response.status_code == 200, response.get_json()
        assert auth.me(response.get_json()["access_token"]).status_code == 200
        seen.add(auth.refresh_token)
    assert len(seen) == 7


def test_reuse_after_grace_revokes_the_session(app, clock) -> None:  # type: ignore[no-untyped-def]
    auth, access = _logged_in(app)
    stolen = auth.refresh_token
    assert auth.refresh().status_code == 200
    fresh_access = auth.cookie("access_token")
    clock.advance(11)  # past REFRESH_REUSE_GRACE
    thief = _auth(app)
    thief.client.set_cookie("refresh_token", stolen, path="/auth")
    thief.client.set_cookie("csrf_token", "c")
    assert thief.refresh(**{"X-CSRF-Token": "c"}).status_code == 401
    # The whole session is gone: its access tokens and its current refresh token.
    assert auth.me(access).status_code == 401
    assert auth.me(fresh_access).status_code == 401
    assert auth.refresh().status_code == 401


def test_previous_token_within_grace_gets_the_current_one(app, clock) -> None:  # type: ignore[no-untyped-def]
    auth, _ = _logged_in(app)
    previous = auth.refresh_token
    assert auth.refresh().status_code == 200
    current = auth.refresh_token
    clock.advance(5)
    other_tab = _auth(app)
    other_tab.client.set_cookie("refresh_token", previous, path="/auth")
    other_tab.client.set_cookie("csrf_token", "c")
    response = other_tab.refresh(**{"X-CSRF-Token": "c"})
    assert response.status_code == 200
    assert other_tab.refresh_token == current  # the session's current token, not a new one
    assert other_tab.me(response.get_json()["access_token"]).status_code == 200
    assert auth.refresh().status_code == 200  # nobody was logged out


def test_idle_and_absolute_expiry_end_refresh(app, clock, make_app) -> None:  # type: ignore[no-untyped-def]
    auth, _ = _logged_in(app)
    clock.advance(7 * 86400)  # SESSION_IDLE_TIMEOUT
    assert auth.refresh().status_code == 401

    auth, _ = _logged_in(app)
    for _ in range(4):  # used every 6 days: never idle...
        clock.advance(6 * 86400)
        assert auth.refresh().status_code == 200
    clock.advance(6 * 86400 - 1)
    assert auth.refresh().status_code == 200
    clock.advance(1)  # ...but SESSION_MAX_AGE (30 days) old now
    assert auth.refresh().status_code == 401


def test_csrf_for_cookie_authenticated_writes(app) -> None:  # type: ignore[no-untyped-def]
    auth, access = _logged_in(app)
    client = auth.client
    no_header = client.post("/auth/logout")
    assert no_header.status_code == 403 and no_header.get_json()["error"] == "csrf_failed"
    wrong = client.post("/auth/logout", headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    foreign = client.post("/auth/logout", headers={**auth.csrf_headers(),
                                                   "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert client.post("/auth/refresh").status_code == 403  # refresh is cookie-authenticated too
    # The same POST with a bearer header needs no CSRF token.
    bearer_only = AuthActions(app.test_client())
    assert bearer_only.client.post("/auth/logout", headers=bearer(access)).status_code == 200


def test_csrf_passes_with_the_right_header_and_origin(app) -> None:  # type: ignore[no-untyped-def]
    auth, _ = _logged_in(app)
    ok = auth.client.post("/auth/logout", headers={**auth.csrf_headers(),
                                                   "Origin": "http://localhost"})
    assert ok.status_code == 200


def test_logout_kills_the_token_and_clears_cookies(app) -> None:  # type: ignore[no-untyped-def]
    auth, access = _logged_in(app)
    response = auth.logout()
    assert response.status_code == 200
    cleared = response.headers.getlist("Set-Cookie")
    assert all("Expires=Thu, 01 Jan 1970" in c for c in cleared) and len(cleared) == 3
    assert auth.me(access).status_code == 401
    assert auth.refresh_token is None


def test_logout_all_and_password_change_end_other_sessions(app) -> None:  # type: ignore[no-untyped-def]
    first, first_access = _logged_in(app)
    second, second_access = _logged_in(app)
    third, third_access = _logged_in(app)
    changed = second.client.post("/auth/password", headers=bearer(second_access),
                                 json={"current_password": PASSWORD,
                                       "new_password": "an entirely new passphrase"})
    assert changed.status_code == 200, changed.get_json()
    assert second.me(second_access).status_code == 200  # the session that changed it stays
    assert first.me(first_access).status_code == 401
    assert third.me(third_access).status_code == 401

    assert second.client.post("/auth/logout-all", headers=bearer(second_access)).status_code == 200
    assert second.me(second_access).status_code == 401


def test_wrong_current_password_changes_nothing(app) -> None:  # type: ignore[no-untyped-def]
    auth, access = _logged_in(app)
    response = auth.client.post("/auth/password", headers=bearer(access),
                                json={"current_password": "wrong wrong wrong",
                                      "new_password": "an entirely new passphrase"})
    assert response.status_code == 403
    assert _auth(app).login().status_code == 200


def test_sessions_are_listed_and_ended_by_their_owner_only(app) -> None:  # type: ignore[no-untyped-def]
    alice, alice_access = _logged_in(app)
    other, other_access = _logged_in(app)
    bob = _auth(app)
    bob_access = bob.login(username="bob").get_json()["access_token"]

    listed = alice.client.get("/auth/sessions", headers=bearer(alice_access)).get_json()["sessions"]
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    other_id = next(s["id"] for s in listed if not s["current"])

    # Bob can neither see nor end Alice's sessions.
    bobs = bob.client.get("/auth/sessions", headers=bearer(bob_access)).get_json()["sessions"]
    assert other_id not in {s["id"] for s in bobs}
    assert bob.client.delete(f"/auth/sessions/{other_id}",
                             headers=bearer(bob_access)).status_code == 404

    assert alice.client.delete(f"/auth/sessions/{other_id}",
                               headers=bearer(alice_access)).status_code == 200
    assert other.me(other_access).status_code == 401
    assert alice.me(alice_access).status_code == 200


@pytest.fixture
def legacy(make_app):  # type: ignore[no-untyped-def]
    def build(phase: str):  # type: ignore[no-untyped-def]
        app = make_app(COOKIE_SECURE=False, LEGACY_HS256_SECRETS=[LEGACY_SECRET],
                       MIGRATION_PHASE=phase)
        uid = make_user(app, "alice")
        # A day: within LEGACY_MAX_LIFETIME (a legacy token living longer is refused).
        token = jwt.encode({"sub": str(uid), "exp": int(time.time()) + 86400}, LEGACY_SECRET,
                           algorithm="HS256")
        return app, token

    return build


def test_legacy_exchange(legacy) -> None:  # type: ignore[no-untyped-def]
    app, old = legacy("dual")
    auth = _auth(app)
    response = auth.client.post("/auth/token/exchange", headers=bearer(old))
    assert response.status_code == 200, response.get_json()
    new = response.get_json()["access_token"]
    assert jwt.get_unverified_header(new)["alg"] == "ES256"
    assert auth.refresh_token
    me = auth.me(new).get_json()
    assert me["legacy"] is False and me["username"] == "alice"
    assert auth.me(old).status_code == 401  # the legacy token was revoked
    assert auth.client.post("/auth/token/exchange", headers=bearer(old)).status_code == 401


def test_exchange_refused_in_asymmetric_phase(legacy) -> None:  # type: ignore[no-untyped-def]
    app, old = legacy("asymmetric")
    response = app.test_client().post("/auth/token/exchange", headers=bearer(old))
    assert response.status_code == 401


def test_exchange_refuses_new_world_tokens(legacy) -> None:  # type: ignore[no-untyped-def]
    app, _ = legacy("dual")
    auth, access = _logged_in(app)
    assert auth.client.post("/auth/token/exchange", headers=bearer(access)).status_code == 403


def test_wrong_current_passwords_are_rate_limited_and_audited(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, RATELIMIT_LOGIN_PER_USERNAME="2/minute")
    make_user(app, "alice")
    auth, access = _logged_in(app)
    wrong = {"current_password": "wrong wrong wrong", "new_password": "an entirely new passphrase"}
    statuses = [auth.client.post("/auth/password", headers=bearer(access), json=wrong).status_code
                for _ in range(3)]
    assert statuses == [403, 403, 429]
    right = auth.client.post("/auth/password", headers=bearer(access),
                             json={**wrong, "current_password": PASSWORD})
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.event == "PASSWORD_CHANGE_FAILED")).all()
        assert [(r.result, r.reason) for r in rows] == [("failure", "bad_current_password")] * 2
        assert all("wrong" not in str(r.details) for r in rows)
