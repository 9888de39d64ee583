"""Admins and passkeys (issue 22): a passkey step-up opens admin changes, the admin API
lists a user's passkeys, and an MFA reset removes them, audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from tests.mfa.test_passkeys import CHALLENGE, Keys
from tests.support.actions import AuthActions
from tests.support.tokens import bearer, make_user
from tests.support.webauthn import SoftAuthenticator


@pytest.fixture
def app(make_app, clock):  # type: ignore[no-untyped-def]
    return make_app(COOKIE_SECURE=False, clock=clock, RATELIMIT_MFA="1000/minute")


def _admin_with_passkey(app, clock) -> tuple[Keys, SoftAuthenticator, str]:  # type: ignore[no-untyped-def]
    admin, key = Keys(app, clock, "root", roles=("admin",)), SoftAuthenticator()
    assert admin.register(key).status_code == 201
    mfa_token = admin.mfa_token()
    token = admin.login(mfa_token, key.get(admin.login_options(mfa_token))).get_json()[
        "access_token"]
    return admin, key, token


def test_a_passkey_step_up_opens_admin_changes(app, clock) -> None:  # type: ignore[no-untyped-def]
    admin, key, token = _admin_with_passkey(app, clock)
    bob = make_user(app, "bob")
    clock.advance(301)
    stale = admin.client.post(f"/admin/api/users/{bob}/revoke-tokens", headers=bearer(token))
    assert stale.status_code == 401 and stale.headers["WWW-Authenticate"] == CHALLENGE
    admin.token = token
    fresh = admin.step_up(key).get_json()["access_token"]
    done = admin.client.post(f"/admin/api/users/{bob}/revoke-tokens", headers=bearer(fresh))
    assert done.status_code == 200 and done.get_json()["revoked"] is True


def test_admin_lists_and_resets_a_users_passkeys(app, clock) -> None:  # type: ignore[no-untyped-def]
    admin, _, token = _admin_with_passkey(app, clock)
    carol, carols_key = Keys(app, clock, "carol"), SoftAuthenticator(backup_eligible=True)
    assert carol.register(carols_key, "Phone").status_code == 201

    listed = admin.client.get(f"/admin/api/users/{carol.user_id}/passkeys",
                              headers=bearer(token)).get_json()
    assert [(p["name"], p["kind"]) for p in listed["passkeys"]] == [("Phone", "swk")]
    reset = admin.client.post(f"/admin/api/users/{carol.user_id}/reset-mfa",
                              headers=bearer(token))
    assert reset.get_json() == {"user_id": carol.user_id, "mfa_was_enabled": True,
                                "mfa_enabled": False}
    assert admin.client.get(f"/admin/api/users/{carol.user_id}/passkeys",
                            headers=bearer(token)).get_json()["passkeys"] == []
    with app.app_context():
        row = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "USER_MFA_RESET")).one()
        assert row.user_id == carol.user_id and row.actor_id == admin.user_id
        assert row.details == {"was_enabled": False, "passkeys_removed": 1}
    # Her session from before has ended, and her login is one step again.
    assert carol.client.get("/api/me", headers=bearer(carol.token)).status_code == 401
    assert "access_token" in AuthActions(app.test_client()).login("carol").get_json()
