"""The shared HS256 secret gets no more from Tessera than an old-system token gave (issue 16).

Findings 1, 2, 3 and 8 of the review: an HS256 token in any form makes a legacy
principal from the database; legacy revocations last as long as the tokens they
revoke; phase ``legacy`` past the sunset locks nobody out; the old system's
``scope``, ``kid``, password changes and usernames. Every app here runs on a
frozen clock, so lifetimes are exact; the race of finding 4 is in
``tests/auth/test_exchange_race.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jwt
import pyotp
import pytest
from flask import Flask
from joserfc.jwk import OctKey

from app import state
from app.core import users as user_service
from app.core.clock import FrozenClock
from app.core.keyring import SigningMaterial, legacy_kid
from app.core.tokens import sign_token
from app.extensions import db
from app.models import AuthSession, User
from tests.support.actions import AuthActions
from tests.support.tokens import PASSWORD, bearer, claims_for, make_user

SECRET = "old-shared-secret-0123456789-abcdef"
OTHER_SECRET = "somebody-elses-secret-0123456789-xyz"
DEFAULT_SCOPE = "notes:read notes:write"
DAY = 86400


@pytest.fixture
def build(make_app: Callable[..., Flask], clock: FrozenClock) -> Callable[..., Flask]:
    """An app on the frozen clock with the legacy secret, in ``phase``, and users root, alice."""
    def make(phase: str = "dual", **settings: Any) -> Flask:
        app = make_app(clock=clock, LEGACY_HS256_SECRETS=[SECRET], MIGRATION_PHASE=phase,
                       COOKIE_SECURE=False, **settings)
        make_user(app, "root", roles=("admin",))
        make_user(app, "alice")
        return app
    return make


def _now(app: Flask) -> int:
    with app.app_context():
        return int(state.now().timestamp())


def _uid(app: Flask, name: str) -> int:
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.username == name))
        assert user is not None
        return int(user.id)


def _old_system(app: Flask, claims: dict[str, Any], secret: str = SECRET,
                **header: Any) -> str:
    """A token as the old system minted it: HS256, its own claims, no Tessera header."""
    payload = {"exp": _now(app) + 600, **claims}
    return jwt.encode(payload, secret, algorithm="HS256", headers=header or None)


def _tessera_form(app: Flask, user_id: int, **overrides: Any) -> str:
    """Tessera's own access-token form (typ at+jwt, every claim) signed with the legacy secret,
    as phase ``legacy`` signs them, or as anyone holding the secret can."""
    signer = SigningMaterial(legacy_kid(SECRET), "HS256", OctKey.import_key(SECRET.encode()))
    return sign_token(signer, claims_for(app, user_id, **overrides))


def _header(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "==")))


def _login(app: Flask, username: str) -> str:
    reply = AuthActions(app.test_client()).login(username=username)
    assert reply.status_code == 200, reply.get_json()
    return str(reply.get_json()["access_token"])


def _me(app: Flask, token: str) -> Any:
    return app.test_client().get("/api/me", headers=bearer(token))


def _rejected(caplog: pytest.LogCaptureFixture, reason: str) -> bool:
    return f"token rejected: {reason}" in caplog.text


# --- finding 1: HS256 in Tessera's own form is a legacy principal, whatever it claims


@pytest.mark.parametrize("phase", ["legacy", "dual"])
def test_tessera_form_hs256_gets_roles_acr_and_scopes_from_the_database(
    build: Callable[..., Flask], phase: str,
) -> None:
    app = build(phase)
    alice = _uid(app, "alice")
    now = _now(app)
    token = _tessera_form(app, alice, roles=["admin"], acr="aal2", amr=["pwd", "otp"],
                          auth_time=now, scope="notes:read admin:everything", sid="forged-sid")
    me = _me(app, token)
    assert me.status_code == 200, me.get_json()
    body = me.get_json()
    assert (body["roles"], body["acr"], body["amr"], body["sid"]) == ([], "aal1", ["pwd"], None)
    assert (body["scope"], body["legacy"]) == (DEFAULT_SCOPE, True)
    client = app.test_client()
    assert client.get("/admin/api/users", headers=bearer(token)).status_code == 403
    export = client.post("/api/account/export", headers=bearer(token))
    assert export.status_code == 401
    assert 'error="insufficient_user_authentication"' in export.headers["WWW-Authenticate"]
    # The forged sid is no session: step-up refuses before any code is looked at.
    step_up = client.post("/mfa/step-up", headers=bearer(token), json={"code": "123456"})
    assert step_up.status_code == 401


@pytest.mark.parametrize("form", ["tessera", "old_system"])
def test_hs256_of_a_disabled_user_is_refused_in_either_form(
    build: Callable[..., Flask], caplog: pytest.LogCaptureFixture, form: str,
) -> None:
    caplog.set_level("INFO", logger="app.security")
    app = build("dual")
    alice = _uid(app, "alice")
    with app.app_context():
        user = db.session.get(User, alice)
        assert user is not None
        user.disabled = True
        db.session.commit()
    token = (_tessera_form(app, alice, roles=["admin"], acr="aal2") if form == "tessera"
             else _old_system(app, {"sub": str(alice)}))
    assert _me(app, token).status_code == 401
    assert _rejected(caplog, "user_disabled")


def test_roles_come_from_the_database_but_never_admin(build: Callable[..., Flask]) -> None:
    """Whoever holds the shared secret can name an admin; that must not administer Tessera."""
    app = build("dual")
    app.test_cli_runner().invoke(args=["users", "create", "ops", "--role", "admin",
                                       "--role", "auditor", "--password-stdin"],
                                 input=PASSWORD + "\n")
    ops = _uid(app, "ops")
    for token in (_tessera_form(app, ops, roles=["admin"]),
                  _old_system(app, {"sub": str(ops), "exp": _now(app) + 3600})):
        assert _me(app, token).get_json()["roles"] == ["auditor"]  # from the database
        client = app.test_client()
        assert client.get("/admin/api/users", headers=bearer(token)).status_code == 403
        assert client.post("/admin/api/keys/rotate", headers=bearer(token),
                           json={"force": True}).status_code == 403
        assert client.put("/admin/api/migration", headers=bearer(token),
                          json={"phase": "legacy"}).status_code == 403
        client.set_cookie("access_token", token)
        assert client.get("/admin", headers={"Accept": "text/html"}).status_code == 403


def test_an_exchanged_admin_session_never_administers(build: Callable[..., Flask]) -> None:
    """The exchange needs no password, so its session rests on the shared secret too."""
    app = build("dual")
    app.test_cli_runner().invoke(args=["users", "create", "ops", "--role", "admin",
                                       "--role", "auditor", "--password-stdin"],
                                 input=PASSWORD + "\n")
    legacy = _old_system(app, {"sub": str(_uid(app, "ops")), "exp": _now(app) + 3600})
    auth = AuthActions(app.test_client())
    exchanged = auth.client.post("/auth/token/exchange", headers=bearer(legacy))
    assert exchanged.status_code == 200
    token = exchanged.get_json()["access_token"]
    assert _me(app, token).get_json()["roles"] == ["auditor"]
    assert app.test_client().get("/admin/api/users", headers=bearer(token)).status_code == 403
    refreshed = auth.refresh()  # every token of that session, not just the first
    assert refreshed.status_code == 200
    assert _me(app, refreshed.get_json()["access_token"]).get_json()["roles"] == ["auditor"]
    assert _me(app, _login(app, "ops")).get_json()["roles"] == ["admin", "auditor"]


# --- finding 2: legacy revocations last as long as the tokens they revoke


def test_admin_jti_revocation_of_a_legacy_token_outlives_access_token_ttl(
    build: Callable[..., Flask], clock: FrozenClock,
) -> None:
    app = build("dual")
    admin = _login(app, "root")
    legacy = _old_system(app, {"sub": str(_uid(app, "alice")), "jti": "old-system-jti-1",
                               "exp": _now(app) + 2 * DAY})
    assert _me(app, legacy).status_code == 200
    revoked = app.test_client().post("/admin/api/tokens/revoke", headers=bearer(admin),
                                     json={"jti": "old-system-jti-1"})
    assert revoked.status_code == 200
    assert _me(app, legacy).status_code == 401
    for hours in (1, 23, 23):  # ACCESS_TOKEN_TTL is 15 minutes; the token lives 48 hours
        clock.advance(hours * 3600)
        assert _me(app, legacy).status_code == 401, hours


def test_revoke_all_covers_legacy_tokens_longer_than_a_session(
    build: Callable[..., Flask], clock: FrozenClock,
) -> None:
    app = build("dual", SESSION_MAX_AGE=3600)
    admin = _login(app, "root")
    alice = _uid(app, "alice")
    legacy = _old_system(app, {"sub": str(alice), "iat": _now(app) - 60,
                               "exp": _now(app) + DAY})
    assert _me(app, legacy).status_code == 200
    client = app.test_client()
    assert client.post(f"/admin/api/users/{alice}/revoke-tokens",
                       headers=bearer(admin)).status_code == 200
    clock.advance(2 * 3600)  # the session bound has passed; the token has not expired
    assert _me(app, legacy).status_code == 401


@pytest.mark.parametrize("how", ["logout", "exchange"])
def test_logout_and_exchange_of_a_legacy_token_last_until_its_exp(
    build: Callable[..., Flask], clock: FrozenClock, how: str,
) -> None:
    app = build("dual")
    legacy = _old_system(app, {"sub": str(_uid(app, "alice")), "exp": _now(app) + 3 * DAY})
    path = "/auth/logout" if how == "logout" else "/auth/token/exchange"
    assert app.test_client().post(path, headers=bearer(legacy)).status_code == 200
    clock.advance(3 * DAY - 60)
    assert _me(app, legacy).status_code == 401


def test_legacy_token_living_longer_than_the_bound_is_refused(
    build: Callable[..., Flask], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="app.security")
    app = build("dual", LEGACY_MAX_LIFETIME=7 * DAY)
    alice = str(_uid(app, "alice"))
    inside = _old_system(app, {"sub": alice, "exp": _now(app) + 7 * DAY})
    beyond = _old_system(app, {"sub": alice, "exp": _now(app) + 7 * DAY + 3600})
    assert _me(app, inside).status_code == 200
    assert _me(app, beyond).status_code == 401
    assert _rejected(caplog, "lifetime_too_long")


# --- finding 3: phase legacy past the sunset locks nobody out


def test_phase_legacy_past_the_sunset_signs_with_the_asymmetric_key(
    build: Callable[..., Flask], clock: FrozenClock,
) -> None:
    app = build("legacy", LEGACY_ACCEPT_UNTIL="2026-01-01T13:00:00Z")  # the clock: 12:00
    before = _login(app, "alice")
    assert _header(before)["alg"] == "HS256"
    clock.advance(3601)
    token = _login(app, "alice")
    assert _header(token)["alg"] == "ES256"
    assert _me(app, token).status_code == 200
    assert _me(app, before).status_code == 401  # HS256 is over, as the sunset said
    auth = AuthActions(app.test_client())
    assert auth.login().status_code == 200
    refreshed = auth.refresh()
    assert refreshed.status_code == 200
    assert _header(refreshed.get_json()["access_token"])["alg"] == "ES256"


def test_past_the_sunset_status_cli_api_and_page_say_what_signs(
    build: Callable[..., Flask],
) -> None:
    app = build("dual", LEGACY_ACCEPT_UNTIL="2026-01-01T00:00:00Z")
    moved = app.test_cli_runner().invoke(args=["migration", "set", "legacy"])
    assert moved.exit_code == 0 and "past LEGACY_ACCEPT_UNTIL" in moved.output
    status = app.test_cli_runner().invoke(args=["migration", "status"])
    assert "phase: legacy" in status.output
    assert "past LEGACY_ACCEPT_UNTIL" in status.output
    assert "signing: ES256" in status.output
    admin = _login(app, "root")
    client = app.test_client()
    state_ = client.get("/admin/api/migration", headers=bearer(admin)).get_json()
    assert state_["phase"] == "legacy"
    assert state_["signing_alg"] == "ES256" and state_["legacy_accepted"] is False
    client.set_cookie("access_token", admin)
    page = client.get("/admin", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "past LEGACY_ACCEPT_UNTIL" in page.get_data(as_text=True)


def test_before_the_sunset_status_says_hs256_signs(build: Callable[..., Flask]) -> None:
    app = build("legacy")
    status = app.test_cli_runner().invoke(args=["migration", "status"])
    assert "signing: HS256" in status.output


def test_mfa_session_in_phase_legacy_gets_an_asymmetric_aal2_token(
    build: Callable[..., Flask],
) -> None:
    # An HS256 token is never more than aal1, so an aal2 session signs with the key
    # that only Tessera holds; otherwise no MFA gate could ever open in phase legacy.
    app = build("legacy")
    auth = AuthActions(app.test_client())
    token = auth.login().get_json()["access_token"]
    secret = auth.client.post("/mfa/totp/enroll", headers=bearer(token)).get_json()["secret"]
    assert auth.client.post("/mfa/totp/confirm", headers=bearer(token),
                            json={"code": pyotp.TOTP(secret).at(_now(app)),
                                  "current_password": PASSWORD}).status_code == 200
    mfa_token = auth.login().get_json()["mfa_token"]
    reply = auth.client.post("/auth/mfa/verify", json={
        "mfa_token": mfa_token, "code": _next_code(secret, app)})
    assert reply.status_code == 200, reply.get_json()
    aal2 = reply.get_json()["access_token"]
    assert _header(aal2)["alg"] == "ES256"
    assert auth.client.post("/api/account/export", headers=bearer(aal2)).status_code == 200


def _next_code(secret: str, app: Flask) -> str:
    return pyotp.TOTP(secret).at(_now(app) + 30)  # the next step: the confirm spent this one


# --- finding 8: the old system's scope, kid, password changes and usernames


def test_legacy_scope_claim_does_not_replace_the_default_scopes(
    build: Callable[..., Flask],
) -> None:
    app = build("dual")
    token = _old_system(app, {"sub": str(_uid(app, "alice")), "scope": "admin:everything"})
    me = _me(app, token)
    assert me.get_json()["scope"] == DEFAULT_SCOPE
    assert app.test_client().get("/api/notes", headers=bearer(token)).status_code == 200


def test_legacy_token_with_its_own_kid_verifies_with_the_legacy_secret(
    build: Callable[..., Flask], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="app.security")
    app = build("dual")
    alice = str(_uid(app, "alice"))
    own_kid = _old_system(app, {"sub": alice}, kid="old-system-key-7")
    assert _me(app, own_kid).status_code == 200
    forged = _old_system(app, {"sub": alice}, secret=OTHER_SECRET, kid="old-system-key-7")
    assert _me(app, forged).status_code == 401
    assert _rejected(caplog, "bad_signature")


def test_hs256_naming_an_asymmetric_kid_never_uses_that_key(
    build: Callable[..., Flask], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="app.security")
    app = build("dual")
    es256 = _login(app, "alice")
    kid = _header(es256)["kid"]
    token = _old_system(app, {"sub": str(_uid(app, "alice"))}, kid=kid)
    assert _me(app, token).status_code == 401
    assert _rejected(caplog, "alg_mismatch")


@pytest.mark.parametrize("store", ["database", "redis"])
def test_password_change_ends_the_users_old_system_tokens(
    build: Callable[..., Flask], clock: FrozenClock, request: pytest.FixtureRequest, store: str,
) -> None:
    redis = {"REDIS_URL": request.getfixturevalue("redis_url")} if store == "redis" else {}
    app = build("dual", **redis)
    alice = str(_uid(app, "alice"))
    with_iat = _old_system(app, {"sub": alice, "iat": _now(app) - 60, "exp": _now(app) + DAY})
    without_iat = _old_system(app, {"sub": alice, "exp": _now(app) + DAY})
    tessera_form = _tessera_form(app, int(alice))
    for token in (with_iat, without_iat, tessera_form):
        assert _me(app, token).status_code == 200
    session = _login(app, "alice")
    changed = app.test_client().post("/auth/password", headers=bearer(session), json={
        "current_password": PASSWORD, "new_password": "a different long passphrase 42"})
    assert changed.status_code == 200, changed.get_json()
    for token in (with_iat, without_iat, tessera_form):
        assert _me(app, token).status_code == 401
    assert _me(app, session).status_code == 200  # the session that changed it goes on
    clock.advance(2)
    after = _old_system(app, {"sub": alice, "iat": _now(app)})
    assert _me(app, after).status_code == 200  # minted after the change


@pytest.mark.parametrize("subject", ["\u212aelvin", "KELVIN", "Kelvin", " kelvin", "kelvin "],
                         ids=["kelvin_sign", "upper", "title", "leading_space", "trailing_space"])
def test_legacy_username_must_be_the_stored_name_exactly(
    build: Callable[..., Flask], caplog: pytest.LogCaptureFixture, subject: str,
) -> None:
    caplog.set_level("INFO", logger="app.security")
    app = build("dual", LEGACY_SUBJECT_LOOKUP="username")
    make_user(app, "kelvin")
    assert _me(app, _old_system(app, {"sub": "kelvin"})).get_json()["username"] == "kelvin"
    assert _me(app, _old_system(app, {"sub": subject})).status_code == 401
    assert _rejected(caplog, "unknown_subject")


def test_usernames_with_compatibility_characters_are_refused_at_creation(
    build: Callable[..., Flask],
) -> None:
    app = build("dual")
    with app.app_context(), pytest.raises(user_service.UserError):
        # U+212A KELVIN SIGN lower-cases to "k": it must not become the account "karen".
        user_service.create_user(db.session(), "\u212aaren", PASSWORD, (), state.now())
    with app.app_context():
        assert db.session.scalar(db.select(User).where(User.username == "karen")) is None


def test_logout_with_a_phase_legacy_token_still_ends_its_session(
    build: Callable[..., Flask],
) -> None:
    # The HS256 token's sid grants nothing, so the session to end is the one whose
    # refresh cookie the log-out carries (a browser sends it under /auth).
    app = build("legacy")
    auth = AuthActions(app.test_client())
    token = auth.login().get_json()["access_token"]
    assert _header(token)["alg"] == "HS256"
    assert auth.client.post("/auth/logout", headers=bearer(token)).status_code == 200
    assert auth.refresh_token is None  # the cookie was cleared; the server must agree
    assert _me(app, token).status_code == 401
    with app.app_context():
        sessions = db.session.scalars(db.select(AuthSession)).all()
        assert len(sessions) == 1 and sessions[0].revoked_at is not None
