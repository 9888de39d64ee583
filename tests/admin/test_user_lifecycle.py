"""The operator's side of users (issue 19): create, reset MFA, temporary passwords,
enable/disable, roles, keyset paging, and the audit row each change leaves."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from app import state
from app.core import users as user_service
from app.extensions import db
from app.models import AuditEvent, User
from tests.support.actions import AuthActions
from tests.support.mfa import enroll_totp
from tests.support.tokens import PASSWORD, bearer, issue, make_user

NEW_PASSWORD = "a brand new pass phrase 42"


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, RATELIMIT_LOGIN_PER_IP="1000/minute",
                   RATELIMIT_LOGIN_PER_USERNAME="1000/minute", RATELIMIT_MFA="1000/minute")
    make_user(app, "root", roles=("admin",))
    make_user(app, "alice")
    return app


def _token(app, username: str = "root", password: str = PASSWORD) -> str:  # type: ignore[no-untyped-def]
    response = AuthActions(app.test_client()).login(username=username, password=password)
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["access_token"])


def _audit(app, event: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == event)
                                       .order_by(AuditEvent.id)))


def test_admin_creates_a_user_with_a_temporary_password(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    admin = _token(app)
    created = client.post("/admin/api/users", headers=bearer(admin),
                          json={"username": "Carol", "password": PASSWORD, "roles": ["editor"],
                                "temporary": True})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["username"] == "carol" and body["roles"] == ["editor"]
    assert body["password_change_required"] is True
    first = AuthActions(app.test_client()).login(username="carol")
    assert first.status_code == 200
    assert first.get_json()["password_change_required"] is True
    assert "access_token" not in first.get_json()
    row = _audit(app, "USER_CREATED")[-1]
    assert (row.actor_id, row.user_id, row.result) == (1, body["id"], "success")
    assert row.details == {"username": "carol", "roles": ["editor"], "temporary": True}


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"username": "alice", "password": PASSWORD}, 409, None),
    ({"username": "dave", "password": "short"}, 400, "password"),
    ({"username": "dave", "password": PASSWORD, "temporary": "soon"}, 400, "temporary"),
    ({"username": "dave", "password": PASSWORD, "roles": ["Bad Role"]}, 400, "roles"),
])
def test_refused_creations_change_nothing(app, body: dict[str, Any], status: int,
                                          field: str | None) -> None:
    client = app.test_client()
    admin = _token(app)
    refused = client.post("/admin/api/users", headers=bearer(admin), json=body)
    assert refused.status_code == status, refused.get_json()
    if field:
        assert field in refused.get_json()["details"]
    users = client.get("/admin/api/users", headers=bearer(admin)).get_json()["users"]
    assert [u["username"] for u in users] == ["root", "alice"]


def test_temporary_password_must_be_replaced_before_anything_else(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    admin = _token(app)
    alice = _token(app, "alice")
    answer = client.post("/admin/api/users/2/temporary-password", headers=bearer(admin))
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    temporary = answer.get_json()["temporary_password"]
    assert client.get("/api/me", headers=bearer(alice)).status_code == 401  # tokens ended
    assert AuthActions(app.test_client()).login(username="alice").status_code == 401  # old one
    user = AuthActions(app.test_client())
    login = user.login(username="alice", password=temporary).get_json()
    assert login["password_change_required"] is True and "access_token" not in login
    assert user.cookie("access_token") is None and user.refresh_token is None  # no session
    change_token = login["password_change_token"]
    # The token is no access token, and an access token cannot stand in for it.
    assert user.me(change_token).status_code == 401
    weak = user.client.post("/auth/password/temporary",
                            json={"password_change_token": change_token, "new_password": "x"})
    assert weak.status_code == 400 and "new_password" in weak.get_json()["details"]
    done = user.client.post("/auth/password/temporary",
                            json={"password_change_token": change_token,
                                  "new_password": NEW_PASSWORD})
    assert done.status_code == 200, done.get_json()
    assert user.me(done.get_json()["access_token"]).get_json()["username"] == "alice"
    again = user.client.post("/auth/password/temporary",
                             json={"password_change_token": change_token,
                                   "new_password": NEW_PASSWORD + "!"})
    assert again.status_code == 401  # single use
    assert AuthActions(app.test_client()).login(username="alice",
                                                password=temporary).status_code == 401
    assert "access_token" in AuthActions(app.test_client()).login(
        username="alice", password=NEW_PASSWORD).get_json()
    row = _audit(app, "USER_PASSWORD_SET")[-1]
    assert (row.actor_id, row.user_id, row.result) == (1, 2, "success")
    assert row.details == {"temporary": True, "generated": True}


def test_a_given_temporary_password_is_strength_checked(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    admin = _token(app)
    weak = client.post("/admin/api/users/2/temporary-password", headers=bearer(admin),
                       json={"password": "alice-alice-alice"})
    assert weak.status_code == 400 and "password" in weak.get_json()["details"]
    assert _token(app, "alice")  # unchanged
    assert _audit(app, "USER_PASSWORD_SET")[-1].result == "failure"
    chosen = client.post("/admin/api/users/2/temporary-password", headers=bearer(admin),
                         json={"password": "Temporary-Pass-2026"})
    assert chosen.get_json()["temporary_password"] == "Temporary-Pass-2026"
    unknown = client.post("/admin/api/users/99/temporary-password", headers=bearer(admin))
    assert unknown.status_code == 404
    extra = client.post("/admin/api/users/2/temporary-password", headers=bearer(admin),
                        json={"password": "Temporary-Pass-2026", "notify": True})
    assert extra.status_code == 400 and "notify" in extra.get_json()["details"]


def test_a_user_with_mfa_passes_the_code_then_changes_the_password(app) -> None:  # type: ignore[no-untyped-def]
    totp = enroll_totp(app, "alice")
    client = app.test_client()
    temporary = client.post("/admin/api/users/2/temporary-password",
                            headers=bearer(_token(app))).get_json()["temporary_password"]
    user = AuthActions(app.test_client())
    mfa_token = user.login(username="alice", password=temporary).get_json()["mfa_token"]
    verified = user.client.post("/auth/mfa/verify", json={
        "mfa_token": mfa_token, "code": totp.at(time.time() + 30)}).get_json()
    assert verified["password_change_required"] is True and "access_token" not in verified
    done = user.client.post("/auth/password/temporary", json={
        "password_change_token": verified["password_change_token"], "new_password": NEW_PASSWORD})
    me = user.me(done.get_json()["access_token"]).get_json()
    assert me["acr"] == "aal2" and me["amr"] == ["pwd", "otp"]


def test_reset_mfa_lets_a_user_who_lost_their_phone_log_in(app) -> None:  # type: ignore[no-untyped-def]
    enroll_totp(app, "alice")
    client = app.test_client()
    assert AuthActions(client).login(username="alice").get_json()["mfa_required"] is True
    admin = _token(app)
    reset = client.post("/admin/api/users/2/reset-mfa", headers=bearer(admin))
    assert reset.status_code == 200
    assert reset.get_json() == {"user_id": 2, "mfa_was_enabled": True, "mfa_enabled": False}
    login = AuthActions(app.test_client()).login(username="alice").get_json()
    assert "access_token" in login  # no second step any more
    listed = client.get("/admin/api/users?q=alice", headers=bearer(admin)).get_json()
    assert listed["users"][0]["mfa_enabled"] is False
    row = _audit(app, "USER_MFA_RESET")[-1]
    assert (row.actor_id, row.user_id, row.details) == (1, 2, {"was_enabled": True})
    assert client.post("/admin/api/users/99/reset-mfa", headers=bearer(admin)).status_code == 404


def test_reset_mfa_ends_the_user_s_tokens(app) -> None:  # type: ignore[no-untyped-def]
    alice = _token(app, "alice")
    client = app.test_client()
    assert client.post("/admin/api/users/2/reset-mfa",
                       headers=bearer(_token(app))).get_json()["mfa_was_enabled"] is False
    assert client.get("/api/me", headers=bearer(alice)).status_code == 401


def test_roles_change_ends_tokens_and_is_audited(app) -> None:  # type: ignore[no-untyped-def]
    alice = _token(app, "alice")
    client = app.test_client()
    admin = _token(app)
    changed = client.patch("/admin/api/users/2", headers=bearer(admin),
                           json={"roles": ["editor", "editor", "viewer"]})
    assert changed.get_json()["roles"] == ["editor", "viewer"]
    assert client.get("/api/me", headers=bearer(alice)).status_code == 401
    assert client.get("/api/me", headers=bearer(_token(app, "alice"))).get_json()["roles"] == [
        "editor", "viewer"]
    enabled = client.patch("/admin/api/users/2", headers=bearer(admin), json={"disabled": True})
    assert enabled.get_json()["disabled"] is True
    assert client.patch("/admin/api/users/2", headers=bearer(admin),
                        json={"disabled": False}).get_json()["disabled"] is False
    assert _token(app, "alice")
    rows = _audit(app, "USER_UPDATED")
    assert [r.details for r in rows] == [{"roles": ["editor", "viewer"]}, {"disabled": True},
                                         {"disabled": False}]
    assert all(r.actor_id == 1 and r.user_id == 2 for r in rows)


def test_changes_need_a_step_up_when_the_admin_has_mfa(app) -> None:  # type: ignore[no-untyped-def]
    totp = enroll_totp(app, "root")
    # An MFA login is confirmed against the second of its password step (the MFA token
    # keeps whole seconds): a user made in that same second would refuse it, as a
    # revocation in that second would. Start in the next second.
    time.sleep(1.01 - time.time() % 1)
    auth = AuthActions(app.test_client())
    mfa_token = auth.login(username="root").get_json()["mfa_token"]
    verified = auth.client.post("/auth/mfa/verify", json={
        "mfa_token": mfa_token, "code": totp.at(time.time() + 30)}).get_json()
    fresh = verified["access_token"]
    for path in ("/admin/api/users/2/reset-mfa", "/admin/api/users/2/temporary-password"):
        assert auth.client.post(path, headers=bearer(fresh)).status_code == 200
    # An admin token without a fresh second factor (aal1) is refused.
    stale = issue(app, 1, roles=["admin"])
    for path in ("/admin/api/users/2/reset-mfa", "/admin/api/users/2/temporary-password"):
        refused = auth.client.post(path, headers=bearer(stale))
        assert refused.status_code == 401
        assert "insufficient_user_authentication" in refused.headers["WWW-Authenticate"]
    refused = auth.client.post("/admin/api/users", headers=bearer(stale),
                               json={"username": "eve", "password": PASSWORD})
    assert refused.status_code == 401


def test_users_page_by_keyset_each_exactly_once(app) -> None:  # type: ignore[no-untyped-def]
    for i in range(23):
        make_user(app, f"user{i:02d}")
    client = app.test_client()
    admin = _token(app)
    seen: list[int] = []
    after: int | None = None
    pages = 0
    while True:
        query = f"/admin/api/users?limit=5{'' if after is None else f'&after_id={after}'}"
        body = client.get(query, headers=bearer(admin)).get_json()
        seen += [u["id"] for u in body["users"]]
        pages += 1
        after = body["next_after_id"]
        if after is None:
            break
    assert seen == sorted(set(seen)) and len(seen) == 25 and pages == 5
    found = client.get("/admin/api/users?q=USER1&limit=3", headers=bearer(admin)).get_json()
    assert [u["username"] for u in found["users"]] == ["user10", "user11", "user12"]
    rest = client.get(f"/admin/api/users?q=user1&limit=50&after_id={found['next_after_id']}",
                      headers=bearer(admin)).get_json()
    assert [u["username"] for u in rest["users"]] == [f"user1{i}" for i in range(3, 10)]
    assert rest["next_after_id"] is None
    for bad in ("limit=0", "limit=201", "after_id=-1", "after_id=x", "page=2"):
        answer = client.get(f"/admin/api/users?{bad}", headers=bearer(admin))
        assert answer.status_code == 400, bad


def test_admin_changes_carry_actor_target_outcome_and_no_secret(app, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("DEBUG")
    client = app.test_client()
    admin = _token(app)
    secrets_seen = [PASSWORD, admin]
    created = client.post("/admin/api/users", headers=bearer(admin), json={
        "username": "frank", "password": "Initial-Pass-For-F1", "temporary": True})
    secrets_seen.append("Initial-Pass-For-F1")
    frank = created.get_json()["id"]
    client.post("/admin/api/users", headers=bearer(admin),
                json={"username": "frank", "password": "Other-Initial-Pass-2"})
    secrets_seen.append("Other-Initial-Pass-2")
    temp = client.post(f"/admin/api/users/{frank}/temporary-password",
                       headers=bearer(admin)).get_json()["temporary_password"]
    secrets_seen.append(temp)
    client.post(f"/admin/api/users/{frank}/temporary-password", headers=bearer(admin),
                json={"password": "Chosen-Temp-Pass-3"})
    secrets_seen.append("Chosen-Temp-Pass-3")
    client.post(f"/admin/api/users/{frank}/reset-mfa", headers=bearer(admin))
    client.patch(f"/admin/api/users/{frank}", headers=bearer(admin), json={"roles": ["x"]})
    client.patch(f"/admin/api/users/{frank}", headers=bearer(admin), json={"disabled": True})
    with app.app_context():
        rows = list(db.session.scalars(select(AuditEvent).where(AuditEvent.actor_id.is_not(None))))
    by_event = {(r.event, r.result) for r in rows if r.event != "USER_TOKENS_REVOKED"}
    assert by_event == {("USER_CREATED", "success"), ("USER_CREATED", "failure"),
                        ("USER_PASSWORD_SET", "success"), ("USER_MFA_RESET", "success"),
                        ("USER_UPDATED", "success")}
    for row in rows:
        assert row.actor_id == 1
        assert row.user_id == frank or (row.event, row.reason) == ("USER_CREATED",
                                                                   "username_taken")
    dumped = "\n".join(f"{r.event} {r.reason} {r.details} {r.user_agent}" for r in rows)
    for secret in secrets_seen:
        assert secret not in dumped
        assert secret not in caplog.text


def test_a_temporary_password_is_replaced_once_even_in_a_race(app) -> None:  # type: ignore[no-untyped-def]
    """The forced change is one conditional UPDATE: of two requests carrying the same
    token that both passed the token check, only the first sets a password."""
    with app.app_context():
        user = db.session.get(User, 2)
        user_service.set_temporary_password(db.session(), user, "Temporary-Pass-2026", state.now())
        first = db.session.get(User, 2)
        assert user_service.replace_temporary_password(db.session(), first, NEW_PASSWORD,
                                                       state.now()) is True
        assert user_service.replace_temporary_password(db.session(), first, "another one 12345",
                                                       state.now()) is False
        db.session.refresh(first)
        assert first.must_change_password is False
    assert _token(app, "alice", NEW_PASSWORD)


def test_an_admin_cannot_lock_themselves_out(app) -> None:  # type: ignore[no-untyped-def]
    client, admin = app.test_client(), _token(app)
    for body in ({"disabled": True}, {"roles": ["editor"]}, {"roles": []}):
        refused = client.patch("/admin/api/users/1", headers=bearer(admin), json=body)
        assert refused.status_code == 403, body
    me = client.get("/admin/api/users?q=root", headers=bearer(admin)).get_json()["users"][0]
    assert me["roles"] == ["admin"] and me["disabled"] is False
    kept = client.patch("/admin/api/users/1", headers=bearer(admin),
                        json={"roles": ["admin", "editor"]})
    assert kept.status_code == 200 and kept.get_json()["roles"] == ["admin", "editor"]
