"""Login, cookies and bad bodies (SPEC §5, issue 4 acceptance 1-2)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app import state
from app.auth import flows
from app.core import passwords
from app.errors import ServiceUnavailable
from app.extensions import db
from app.models import AuditEvent, AuthSession, RefreshToken, User
from app.security import snapshot
from app.security.revocation import revocations
from tests.support.actions import AuthActions
from tests.support.tokens import PASSWORD, make_user


@pytest.fixture
def dev_app(make_app):  # type: ignore[no-untyped-def]
    """COOKIE_SECURE=false, so the http test client sends cookies back."""
    app = make_app(COOKIE_SECURE=False)
    make_user(app, "alice")
    return app


@pytest.fixture
def auth(dev_app) -> AuthActions:  # type: ignore[no-untyped-def]
    return AuthActions(dev_app.test_client())


def test_login_returns_token_and_sets_cookies(auth) -> None:  # type: ignore[no-untyped-def]
    response = auth.login()
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "session_id"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert response.headers["Cache-Control"] == "no-store"
    assert auth.cookie("access_token") == body["access_token"]
    assert auth.refresh_token and auth.refresh_token not in response.get_data(as_text=True)
    me = auth.me(body["access_token"]).get_json()
    assert me["username"] == "alice" and me["acr"] == "aal1" and me["amr"] == ["pwd"]


def test_username_is_case_insensitive(auth) -> None:  # type: ignore[no-untyped-def]
    assert auth.login(username="ALICE").status_code == 200


@pytest.mark.parametrize("case", ["wrong_password", "unknown_user", "disabled_user"])
def test_failures_share_one_answer(dev_app, auth, case) -> None:  # type: ignore[no-untyped-def]
    if case == "disabled_user":
        with dev_app.app_context():
            db.session.execute(update(User).values(disabled=True))
            db.session.commit()
    username, password = {
        "wrong_password": ("alice", "not the password at all"),
        "unknown_user": ("nobody", PASSWORD),
        "disabled_user": ("alice", PASSWORD),
    }[case]
    response = auth.login(username=username, password=password)
    assert response.status_code == 401
    body = response.get_json()
    assert body == {"error": "unauthorized", "message": "Wrong username or password.",
                    "details": {}, "request_id": body["request_id"]}
    assert auth.refresh_token is None


def test_unknown_user_runs_the_password_hash(auth, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = []
    real_verify = passwords.verify_password

    def spy(stored, password):  # type: ignore[no-untyped-def]
        calls.append(stored)
        return real_verify(stored, password)

    monkeypatch.setattr(passwords, "verify_password", spy)
    assert auth.login(username="nobody").status_code == 401
    assert len(calls) == 1 and calls[0].startswith("$argon2id$")


def test_old_parameters_are_rehashed_on_login(dev_app, auth) -> None:  # type: ignore[no-untyped-def]
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with dev_app.app_context():
        db.session.execute(update(User).values(password_hash=weak))
        db.session.commit()
    assert auth.login().status_code == 200
    with dev_app.app_context():
        stored = db.session.scalars(db.select(User)).one().password_hash
    assert stored != weak and "m=19456,t=2,p=1" in stored


@pytest.mark.parametrize(
    ("body", "status", "details"),
    [
        ({"username": "alice", "password": PASSWORD, "remember": True}, 400,
         {"remember": ["Unknown field."]}),
        ({"username": "alice"}, 400, {"password": ["Missing data for required field."]}),
        ({"username": 5, "password": PASSWORD}, 400, {"username": ["Not a valid string."]}),
        ({"username": "alice", "password": ["x"]}, 400, {"password": ["Not a valid string."]}),
        ({"username": "", "password": PASSWORD}, 400,
         {"username": ["Length must be between 1 and 64."]}),
    ],
)
def test_bad_bodies(auth, body, status, details) -> None:  # type: ignore[no-untyped-def]
    response = auth.client.post("/auth/login", json=body)
    assert response.status_code == status
    assert response.get_json()["error"] == "invalid_request"
    assert response.get_json()["details"] == details


def test_non_json_and_oversized_bodies(auth) -> None:  # type: ignore[no-untyped-def]
    form = auth.client.post("/auth/login", data={"username": "alice", "password": PASSWORD})
    assert form.status_code == 415 and form.get_json()["error"] == "unsupported_media_type"
    huge = json.dumps({"username": "alice", "password": "x" * 70_000})
    big = auth.client.post("/auth/login", data=huge, content_type="application/json")
    assert big.status_code == 413 and big.get_json()["error"] == "payload_too_large"


def test_secure_cookie_attributes(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()  # COOKIE_SECURE defaults to true
    make_user(app, "alice")
    response = app.test_client().post("/auth/login",
                                      json={"username": "alice", "password": PASSWORD})
    cookies = {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}
    assert set(cookies) == {"__Host-access_token", "__Secure-refresh_token", "__Host-csrf_token"}
    access, refresh, csrf = (cookies["__Host-access_token"], cookies["__Secure-refresh_token"],
                             cookies["__Host-csrf_token"])
    for cookie in (access, refresh, csrf):
        assert "; Secure" in cookie and "; SameSite=Strict" in cookie
    assert "; HttpOnly" in access and "; Path=/;" in access + ";"
    assert "; HttpOnly" in refresh and "; Path=/auth" in refresh
    assert "HttpOnly" not in csrf and "; Path=/" in csrf
    assert "Domain" not in access and "Domain" not in csrf  # __Host- forbids it


def test_development_cookies_drop_secure_and_prefixes(auth) -> None:  # type: ignore[no-untyped-def]
    response = auth.login()
    cookies = response.headers.getlist("Set-Cookie")
    names = {c.split("=", 1)[0] for c in cookies}
    assert names == {"access_token", "refresh_token", "csrf_token"}
    assert not any("Secure" in c for c in cookies)


def test_refresh_token_never_logged(dev_app, auth, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    auth.login()
    first = auth.refresh_token
    assert auth.refresh().status_code == 200
    second = auth.refresh_token
    assert first and second and first != second
    text = caplog.text
    assert first not in text and second not in text and PASSWORD not in text


def test_registration_is_off_by_default(auth, make_app) -> None:  # type: ignore[no-untyped-def]
    body = {"username": "bob", "password": PASSWORD}
    assert auth.client.post("/auth/register", json=body).status_code == 404
    open_app = make_app(REGISTRATION_ENABLED=True)
    created = open_app.test_client().post("/auth/register", json=body)
    assert created.status_code == 201 and created.get_json()["username"] == "bob"
    taken = open_app.test_client().post("/auth/register", json=body)
    assert taken.status_code == 400 and "username" in taken.get_json()["details"]


@pytest.mark.parametrize("body", [{"password": PASSWORD}, {"username": None, "password": PASSWORD},
                                  {"username": ["none"], "password": PASSWORD}])
def test_bodies_without_a_username_do_not_count_against_a_user_named_none(
    make_app, body
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, RATELIMIT_LOGIN_PER_USERNAME="2/minute",
                   RATELIMIT_LOGIN_PER_IP="1000/minute")
    make_user(app, "none")
    client = app.test_client()
    for _ in range(3):
        assert client.post("/auth/login", json=body).status_code in (400, 429)
    response = client.post("/auth/login", json={"username": "none", "password": PASSWORD})
    assert response.status_code == 200, response.get_json()


def test_a_login_that_fails_before_its_commit_writes_nothing(make_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The session, its refresh token and the login's audit rows are one transaction
    (SPEC §5, §9): a failure after the session was made leaves none of them."""
    app = make_app(COOKIE_SECURE=False, KEYRING_REFRESH=3600)  # no keyring reload mid-test
    make_user(app, "alice")
    auth = AuthActions(app.test_client())
    assert auth.login().status_code == 200

    def no_key(*args: object, **kwargs: object) -> None:
        raise ServiceUnavailable("No signing key is available.")

    monkeypatch.setattr(flows, "access_token_for", no_key)
    assert auth.login().status_code == 503
    with app.app_context():
        for model in (AuthSession, RefreshToken):
            assert db.session.scalar(select(func.count()).select_from(model)) == 1
        events = db.session.scalars(select(AuditEvent.event)).all()
        assert events.count("LOGIN_SUCCESS") == 1 and events.count("TOKEN_ISSUED") == 1


def test_a_login_refused_for_its_signing_key_writes_nothing(dev_app, auth) -> None:  # type: ignore[no-untyped-def]
    """A key another worker revoked, still in this worker's keyring, fails the login after
    its session was made; the keyring reload on that path must not commit the session."""
    with dev_app.test_request_context():
        kid = snapshot().current_signer().kid  # type: ignore[union-attr]
        revocations().revoke_kid(kid, state.now() + timedelta(hours=1), state.now())
    response = auth.login()
    assert response.status_code == 503 and auth.refresh_token is None
    with dev_app.app_context():
        for model in (AuthSession, RefreshToken):
            assert db.session.scalar(select(func.count()).select_from(model)) == 0
        events = db.session.scalars(select(AuditEvent.event)).all()
        assert "LOGIN_SUCCESS" not in events and "TOKEN_ISSUED" not in events
