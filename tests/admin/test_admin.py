"""Guards, resources, the admin API and the audit trail (SPEC §8, §9; issue 7)."""

from __future__ import annotations

import re
import time

import jwt
import pyotp
import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from tests.support.actions import AuthActions
from tests.support.tokens import PASSWORD, bearer, make_user

LEGACY_SECRET = "old-shared-secret-0123456789-abcdef"


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, LEGACY_HS256_SECRETS=[LEGACY_SECRET],
                   MIGRATION_PHASE="dual", RATELIMIT_LOGIN_PER_IP="1000/minute",
                   RATELIMIT_LOGIN_PER_USERNAME="1000/minute")
    make_user(app, "root", roles=("admin",))
    make_user(app, "alice")
    make_user(app, "bob")
    return app


def _token(app, username: str) -> str:  # type: ignore[no-untyped-def]
    response = AuthActions(app.test_client()).login(username=username)
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["access_token"])


def _sample_path(rule) -> str:  # type: ignore[no-untyped-def]
    return re.sub(r"<(?:\w+:)?([^>]+)>", lambda m: "1" if "id:" in m.group(0) else "x", rule.rule)


def _guarded_rules(app):  # type: ignore[no-untyped-def]
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("api.", "admin.")):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_every_api_and_admin_route_is_closed_by_default(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    user_token = _token(app, "alice")
    rules = list(_guarded_rules(app))
    assert len(rules) >= 15  # the walk really covers the areas
    for rule, method in rules:
        path = _sample_path(rule)
        anonymous = client.open(path, method=method, json={})
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        if rule.endpoint.startswith("admin."):
            plain = client.open(path, method=method, headers=bearer(user_token), json={})
            assert plain.status_code == 403, (method, path)


def test_missing_scope_is_403_naming_it(app, make_app) -> None:  # type: ignore[no-untyped-def]
    from tests.support.tokens import issue

    reader = issue(app, 2, scope="notes:read")
    client = app.test_client()
    response = client.post("/api/notes", headers=bearer(reader), json={"title": "t"})
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
    assert response.get_json()["details"] == {"scope": "notes:write"}
    assert 'scope="notes:write"' in response.headers["WWW-Authenticate"]
    assert client.get("/api/notes", headers=bearer(reader)).status_code == 200


def test_notes_belong_to_their_owner(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    alice, bob = _token(app, "alice"), _token(app, "bob")
    created = client.post("/api/notes", headers=bearer(alice), json={"title": "mine", "body": "x"})
    assert created.status_code == 201
    note_id = created.get_json()["id"]
    assert client.get(f"/api/notes/{note_id}", headers=bearer(alice)).status_code == 200
    assert client.get(f"/api/notes/{note_id}", headers=bearer(bob)).status_code == 404
    assert client.delete(f"/api/notes/{note_id}", headers=bearer(bob)).status_code == 404
    assert client.get("/api/notes", headers=bearer(bob)).get_json()["notes"] == []
    assert client.delete(f"/api/notes/{note_id}", headers=bearer(alice)).status_code == 200
    assert client.get(f"/api/notes/{note_id}", headers=bearer(alice)).status_code == 404


def test_admin_revokes_every_token_of_a_user(app) -> None:  # type: ignore[no-untyped-def]
    admin = _token(app, "root")
    victim = AuthActions(app.test_client())
    access = victim.login(username="alice").get_json()["access_token"]
    other_access = _token(app, "alice")
    response = app.test_client().post("/admin/api/users/2/revoke-tokens", headers=bearer(admin))
    assert response.status_code == 200
    assert victim.me(access).status_code == 401
    assert victim.me(other_access).status_code == 401
    assert victim.refresh().status_code == 401  # the refresh cookie too
    assert victim.me(admin).status_code == 200  # the admin's own session is untouched
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "USER_TOKENS_REVOKED")).one()
    assert event.user_id == 2 and event.actor_id == 1


def test_disabling_a_user_ends_their_sessions(app) -> None:  # type: ignore[no-untyped-def]
    admin, alice = _token(app, "root"), _token(app, "alice")
    client = app.test_client()
    assert client.patch("/admin/api/users/2", headers=bearer(admin),
                        json={"disabled": True}).status_code == 200
    assert client.get("/api/me", headers=bearer(alice)).status_code == 401
    assert AuthActions(client).login(username="alice").status_code == 401
    bad = client.patch("/admin/api/users/2", headers=bearer(admin), json={"disabled": "maybe"})
    assert bad.status_code == 400 and "disabled" in bad.get_json()["details"]


def test_admin_user_listing_search_and_paging(app) -> None:  # type: ignore[no-untyped-def]
    admin = _token(app, "root")
    client = app.test_client()
    page = client.get("/admin/api/users?limit=2", headers=bearer(admin)).get_json()
    assert len(page["users"]) == 2 and page["next_after_id"] == page["users"][-1]["id"]
    rest = client.get(f"/admin/api/users?limit=2&after_id={page['next_after_id']}",
                      headers=bearer(admin)).get_json()
    assert len(rest["users"]) == 1 and rest["next_after_id"] is None
    found = client.get("/admin/api/users?q=ALI", headers=bearer(admin)).get_json()
    assert [u["username"] for u in found["users"]] == ["alice"]
    bad = client.get("/admin/api/users?limit=0", headers=bearer(admin))
    assert bad.status_code == 400


def test_key_endpoints_match_the_cli_and_are_audited(app) -> None:  # type: ignore[no-untyped-def]
    admin = _token(app, "root")
    client = app.test_client()
    keys = client.get("/admin/api/keys", headers=bearer(admin)).get_json()["keys"]
    assert sorted(k["state"] for k in keys) == ["active", "standby"]
    refused = client.post("/admin/api/keys/rotate", headers=bearer(admin))
    assert refused.status_code == 409  # standby younger than the JWKS max-age, as in the CLI
    rotated = client.post("/admin/api/keys/rotate", headers=bearer(admin), json={"force": True})
    assert rotated.status_code == 200
    new_kid = rotated.get_json()["active_kid"]
    assert jwt.get_unverified_header(_token(app, "alice"))["kid"] == new_kid
    revoked = client.post(f"/admin/api/keys/{new_kid}/revoke", headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.get_json()["state"] == "revoked"
    assert client.post("/admin/api/keys/nope/revoke", headers=bearer(admin)).status_code == 404
    listing = app.test_cli_runner().invoke(args=["keys", "list"])
    assert f"{new_kid}  ES256  revoked" in listing.output
    with app.app_context():
        events = set(db.session.scalars(select(AuditEvent.event)))
    assert {"KEY_ROTATED", "KEY_REVOKED"} <= events


def test_migration_endpoint_counts_legacy_tokens_and_sets_the_phase(app) -> None:  # type: ignore[no-untyped-def]
    admin = _token(app, "root")
    client = app.test_client()
    legacy = jwt.encode({"sub": "2", "exp": int(time.time()) + 600}, LEGACY_SECRET,
                        algorithm="HS256")
    for _ in range(4):
        assert client.get("/api/me", headers=bearer(legacy)).status_code == 200
    state = client.get("/admin/api/migration", headers=bearer(admin)).get_json()
    assert state["phase"] == "dual"
    assert sum(day["count"] for day in state["legacy_usage"]) == 4
    assert state["last_legacy_token_at"] is not None
    changed = client.put("/admin/api/migration", headers=bearer(admin),
                         json={"phase": "asymmetric"})
    assert changed.status_code == 200 and changed.get_json()["phase"] == "asymmetric"
    assert client.get("/api/me", headers=bearer(legacy)).status_code == 401  # next request
    bad = client.put("/admin/api/migration", headers=bearer(admin), json={"phase": "later"})
    assert bad.status_code == 400


def test_admin_changes_need_a_recent_step_up_when_the_admin_has_mfa(app) -> None:  # type: ignore[no-untyped-def]
    auth = AuthActions(app.test_client())
    admin = auth.login(username="root").get_json()["access_token"]
    secret = auth.client.post("/mfa/totp/enroll", headers=bearer(admin)).get_json()["secret"]
    code = pyotp.TOTP(secret).now()
    assert auth.client.post("/mfa/totp/confirm", headers=bearer(admin),
                            json={"code": code, "current_password": PASSWORD}).status_code == 200
    change = auth.client.post("/admin/api/users/2/revoke-tokens", headers=bearer(admin))
    assert change.status_code == 401
    assert 'error="insufficient_user_authentication"' in change.headers["WWW-Authenticate"]
    assert auth.client.get("/admin/api/users", headers=bearer(admin)).status_code == 200  # reads


@pytest.mark.parametrize("huge", [2**31, 2**63 - 2, 10**30])
def test_ids_beyond_the_key_column_are_client_errors(app, huge: int) -> None:
    """PostgreSQL's Integer keys are 32-bit: a larger id must not reach the database."""
    client = app.test_client()
    alice, admin = _token(app, "alice"), _token(app, "root")
    assert client.get(f"/api/notes/{huge}", headers=bearer(alice)).status_code == 404
    assert client.get(f"/admin/api/users/{huge}/sessions", headers=bearer(admin)).status_code == 404
    for field in ("user_id", "before_id"):
        answer = client.get(f"/admin/api/audit?{field}={huge}", headers=bearer(admin))
        assert answer.status_code == 400 and field in answer.get_json()["details"]


def test_audit_query_filters_and_pages(app) -> None:  # type: ignore[no-untyped-def]
    admin = _token(app, "root")
    for _ in range(3):
        AuthActions(app.test_client()).login(username="alice", password="wrong wrong wrong")
    client = app.test_client()
    first = client.get("/admin/api/audit?event=LOGIN_FAILURE&limit=2", headers=bearer(admin))
    body = first.get_json()
    assert len(body["events"]) == 2 and body["next_before_id"]
    rest = client.get(f"/admin/api/audit?event=LOGIN_FAILURE&limit=2"
                      f"&before_id={body['next_before_id']}", headers=bearer(admin)).get_json()
    assert len(rest["events"]) == 1
    by_user = client.get("/admin/api/audit?user_id=1", headers=bearer(admin)).get_json()
    assert by_user["events"] and all(e["user_id"] == 1 for e in by_user["events"])
    window = client.get("/admin/api/audit?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z",
                        headers=bearer(admin)).get_json()
    assert window["events"] == []
    assert client.get("/admin/api/audit?since=yesterday", headers=bearer(admin)).status_code == 400


def test_audit_trail_has_each_event_and_no_secret(app, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("DEBUG")
    secrets_used: list[str] = [PASSWORD, LEGACY_SECRET, "wrong wrong wrong"]
    auth = AuthActions(app.test_client())
    assert auth.login(username="alice", password="wrong wrong wrong").status_code == 401
    login = auth.login(username="alice")
    access = login.get_json()["access_token"]
    secrets_used += [access, auth.refresh_token or ""]
    stolen = auth.refresh_token
    assert auth.refresh().status_code == 200
    secrets_used += [auth.refresh_token or "", auth.cookie("access_token") or ""]
    time.sleep(0)  # the grace window is 10 s: reuse is caught by a second, older token below
    forged = access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB")
    secrets_used.append(forged)
    assert auth.me(forged).status_code == 401
    # MFA failure
    secret = auth.client.post("/mfa/totp/enroll",
                              headers=bearer(auth.cookie("access_token"))).get_json()["secret"]
    secrets_used.append(secret)
    bad_code = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    secrets_used.append(bad_code)
    auth.client.post("/mfa/totp/confirm", headers=bearer(auth.cookie("access_token")),
                     json={"code": bad_code, "current_password": PASSWORD})
    # Reuse: rotate twice, then present the first (consumed, not the immediate previous).
    assert auth.refresh().status_code == 200
    thief = AuthActions(app.test_client())
    thief.client.set_cookie("refresh_token", stolen, path="/auth")
    thief.client.set_cookie("csrf_token", "c")
    assert thief.refresh(**{"X-CSRF-Token": "c"}).status_code == 401
    # Logout, revoke
    second = AuthActions(app.test_client())
    second_access = second.login(username="alice").get_json()["access_token"]
    secrets_used.append(second_access)
    assert second.logout().status_code == 200
    admin = _token(app, "root")
    secrets_used.append(admin)
    app.test_client().post("/admin/api/users/3/revoke-tokens", headers=bearer(admin))

    with app.app_context():
        rows = db.session.scalars(select(AuditEvent)).all()
    events = {row.event for row in rows}
    assert {"LOGIN_FAILURE", "LOGIN_SUCCESS", "TOKEN_ISSUED", "TOKEN_REFRESHED",
            "REFRESH_REUSE_DETECTED", "SESSION_REVOKED", "TOKEN_REVOKED", "MFA_FAILURE",
            "TOKEN_INVALID", "USER_TOKENS_REVOKED"} <= events
    invalid = next(r for r in rows if r.event == "TOKEN_INVALID")
    assert invalid.reason == "bad_signature" and invalid.request_id and invalid.ip
    success = next(r for r in rows if r.event == "LOGIN_SUCCESS")
    assert success.user_id == 2 and success.session_id and success.user_agent is not None

    dumped = "\n".join(f"{r.event} {r.user_id} {r.session_id} {r.request_id} {r.ip} "
                       f"{r.user_agent} {r.reason} {r.kid} {r.details}" for r in rows)
    logged = caplog.text
    for secret_value in filter(None, secrets_used):
        assert secret_value not in dumped, secret_value[:12]
        assert secret_value not in logged, secret_value[:12]
