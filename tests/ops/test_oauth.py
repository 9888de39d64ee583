"""RFC 7662 introspection and RFC 7009 revocation for service clients (issue 8, acceptance 5)."""

from __future__ import annotations

import base64
import re

import pytest

from tests.support.actions import AuthActions
from tests.support.tokens import bearer, make_user


@pytest.fixture
def setup(make_app, clock):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock)
    make_user(app, "alice")
    created = app.test_cli_runner().invoke(args=["clients", "create", "notes service"])
    assert created.exit_code == 0, created.output
    client_id = re.search(r"client_id:\s+(\S+)", created.output).group(1)
    secret = re.search(r"client_secret:\s+(\S+)", created.output).group(1)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return app, {"Authorization": f"Basic {basic}"}, (client_id, secret)


def _introspect(app, auth, token, **extra):  # type: ignore[no-untyped-def]
    return app.test_client().post("/oauth/introspect", data={"token": token, **extra},
                                  headers=auth)


def test_active_token_shows_its_claims(setup) -> None:  # type: ignore[no-untyped-def]
    app, auth, _ = setup
    token = AuthActions(app.test_client()).login().get_json()["access_token"]
    body = _introspect(app, auth, token).get_json()
    assert body["active"] is True and body["sub"] == "1" and body["token_type"] == "access_token"
    assert body["scope"] == "notes:read notes:write" and body["client_id"] == "web"


def test_revoked_expired_and_forged_tokens_are_inactive(setup, clock) -> None:  # type: ignore[no-untyped-def]
    app, auth, _ = setup
    user = AuthActions(app.test_client())
    revoked = user.login().get_json()["access_token"]
    assert user.client.post("/auth/logout", headers=bearer(revoked)).status_code == 200
    assert _introspect(app, auth, revoked).get_json() == {"active": False}
    forged = AuthActions(app.test_client()).login().get_json()["access_token"][:-4] + "AAAA"
    assert _introspect(app, auth, forged).get_json() == {"active": False}
    assert _introspect(app, auth, "not-a-token").get_json() == {"active": False}
    expiring = AuthActions(app.test_client()).login().get_json()["access_token"]
    clock.advance(900 + 31)
    assert _introspect(app, auth, expiring).get_json() == {"active": False}


def test_unauthenticated_client_gets_401(setup) -> None:  # type: ignore[no-untyped-def]
    app, _, (client_id, _) = setup
    token = AuthActions(app.test_client()).login().get_json()["access_token"]
    assert app.test_client().post("/oauth/introspect", data={"token": token}).status_code == 401
    wrong = base64.b64encode(f"{client_id}:wrong".encode()).decode()
    response = _introspect(app, {"Authorization": f"Basic {wrong}"}, token)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    assert app.test_client().post("/oauth/revoke", data={"token": token}).status_code == 401


def test_client_secret_post_works_too(setup) -> None:  # type: ignore[no-untyped-def]
    app, _, (client_id, secret) = setup
    token = AuthActions(app.test_client()).login().get_json()["access_token"]
    body = app.test_client().post("/oauth/introspect", data={
        "token": token, "client_id": client_id, "client_secret": secret}).get_json()
    assert body["active"] is True


def test_revocation_endpoint_revokes_access_and_refresh_tokens(setup) -> None:  # type: ignore[no-untyped-def]
    app, auth, _ = setup
    user = AuthActions(app.test_client())
    access = user.login().get_json()["access_token"]
    response = app.test_client().post("/oauth/revoke", data={"token": access}, headers=auth)
    assert response.status_code == 200
    assert user.me(access).status_code == 401

    second = AuthActions(app.test_client())
    second_access = second.login().get_json()["access_token"]
    refresh = second.refresh_token
    assert _introspect(app, auth, refresh, token_type_hint="refresh_token").get_json()[
        "active"] is True
    assert app.test_client().post("/oauth/revoke", headers=auth,
                                  data={"token": refresh,
                                        "token_type_hint": "refresh_token"}).status_code == 200
    assert second.refresh().status_code == 401  # the refresh token's session ended
    assert second.me(second_access).status_code == 401  # and its access tokens
    # Unknown tokens are not an error (RFC 7009 §2.2).
    assert app.test_client().post("/oauth/revoke", data={"token": "nope"},
                                  headers=auth).status_code == 200


def test_client_secret_is_stored_hashed(setup) -> None:  # type: ignore[no-untyped-def]
    app, _, (client_id, secret) = setup
    from app.extensions import db
    from app.models import ServiceClient

    with app.app_context():
        stored = db.session.get(ServiceClient, client_id).secret_hash
    assert stored.startswith("$argon2id$") and secret not in stored
