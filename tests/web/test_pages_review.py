"""The web pages through Flask's test client: expiry on forms, silent refresh, error pages.

A browser's part is played by the test client's cookie jar, and the frozen
clock stands in for the minutes a person leaves a page open.
"""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.test import TestResponse

from app.errors import Conflict
from app.extensions import db
from app.models import AuthSession, User
from app.security import authenticate
from tests.support.tokens import PASSWORD, make_user

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
EXPIRED = 900 + 30 + 1  # ACCESS_TOKEN_TTL + CLOCK_SKEW_LEEWAY, and a second


@pytest.fixture
def app(make_app, clock) -> Flask:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock)
    make_user(app, "alice")
    return app


def _cookie(client: FlaskClient, name: str, path: str = "/") -> str | None:
    cookie = client.get_cookie(name, path=path)
    return cookie.value if cookie is not None else None


def _csrf(client: FlaskClient) -> str:
    value = _cookie(client, "csrf_token")
    assert value
    return value


def _log_in(client: FlaskClient, username: str = "alice") -> None:
    client.get("/login")  # sets the CSRF cookie the form echoes
    response = client.post("/login", data={"username": username, "password": PASSWORD,
                                           "csrf_token": _csrf(client)})
    assert response.status_code == 303 and response.location == "/account", response.text


def _post(client: FlaskClient, path: str, **fields: str) -> TestResponse:
    return client.post(path, data={"csrf_token": _csrf(client), **fields}, headers=HTML)


def _notice(response: TestResponse) -> str:
    found = re.search(r'<div class="notice [a-z]+" role="status">([^<]*)</div>', response.text)
    return found.group(1) if found else ""


def _session_ids(app: Flask, *, live: bool) -> list[str]:
    with app.app_context():
        stmt = select(AuthSession.id).where(
            AuthSession.revoked_at.is_(None) if live else AuthSession.revoked_at.is_not(None))
        return list(db.session.scalars(stmt))


# --- log out and forms after the access token has expired (item 1)


def test_log_out_after_the_access_token_expired_ends_the_session(app, clock) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    [session_id] = _session_ids(app, live=True)
    clock.advance(EXPIRED)
    response = _post(client, "/auth/signout")
    assert response.status_code == 303 and response.location == "/login?n=logged_out"
    assert _session_ids(app, live=False) == [session_id]
    assert _cookie(client, "refresh_token", path="/auth") is None
    assert _cookie(client, "access_token") is None


def test_log_out_with_a_live_access_token(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    response = _post(client, "/auth/signout")
    assert response.status_code == 303 and response.location == "/login?n=logged_out"
    assert _session_ids(app, live=True) == []


def test_expired_log_out_still_needs_the_csrf_value(app, clock) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    clock.advance(EXPIRED)
    response = client.post("/auth/signout", data={"csrf_token": "forged"}, headers=HTML)
    assert response.status_code == 403 and "text/html" in response.content_type
    assert len(_session_ids(app, live=True)) == 1


def test_a_form_posted_after_expiry_asks_to_be_sent_again(app, clock) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    clock.advance(EXPIRED)
    posted = _post(client, "/account/password", current_password=PASSWORD,
                   new_password="an entirely new passphrase")
    assert posted.status_code == 303 and posted.location.startswith("/auth/resume?")
    resumed = client.get(posted.location, headers=HTML)
    assert resumed.status_code == 303 and resumed.location == "/account?n=resubmit"
    page = client.get(resumed.location, headers=HTML)
    assert page.status_code == 200
    assert _notice(page) == "Your session was renewed; please submit the form again."


def test_a_refresh_keeps_the_csrf_value_and_a_login_makes_a_new_one(app, clock) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    first = _csrf(client)
    api = client.post("/auth/refresh", headers={"X-CSRF-Token": first})
    assert api.status_code == 200 and _csrf(client) == first  # other tabs' forms still work
    clock.advance(EXPIRED)
    assert client.get("/auth/resume?next=/account").status_code == 303
    assert _csrf(client) == first
    _log_in(client)
    assert _csrf(client) != first


def test_a_malformed_csrf_cookie_is_replaced_on_refresh(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    client.set_cookie("csrf_token", "short")
    assert client.post("/auth/refresh", headers={"X-CSRF-Token": "short"}).status_code == 200
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", _csrf(client))


# --- the silent refresh never loops (items 2 and 9)


def test_pages_ignore_an_authorization_header(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    for header in ("Basic YWxpY2U6cGFzc3dvcmQ=", "Bearer not-a-token"):
        response = client.get("/account", headers={**HTML, "Authorization": header})
        assert response.status_code == 200, response.location
        assert 'id="username">alice<' in response.text


def test_a_page_refused_right_after_a_resume_goes_to_the_login_page(app, clock) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    clock.advance(EXPIRED)
    assert client.get("/account").location == "/auth/resume?next=/account"
    assert client.get("/auth/resume?next=/account").location == "/account"
    client.delete_cookie("access_token")  # the renewed token does not reach the page
    again = client.get("/account", headers=HTML)
    assert again.status_code == 303 and again.location == "/login?n=resume_failed"
    assert _cookie(client, "resumed") is None


def test_a_resume_that_worked_leaves_no_mark(app, clock) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    clock.advance(EXPIRED)
    client.get("/auth/resume?next=/account")
    assert client.get("/account").status_code == 200
    assert _cookie(client, "resumed") is None
    clock.advance(EXPIRED)  # idle again: a silent refresh, not the login page
    assert client.get("/account").location == "/auth/resume?next=/account"


@pytest.mark.parametrize("mode", ["cors", "no-cors", "same-origin", "websocket"])
def test_resume_is_for_top_level_navigation_only(app, clock, mode) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    refresh = _cookie(client, "refresh_token", path="/auth")
    refused = client.get("/auth/resume?next=/account", headers={"Sec-Fetch-Mode": mode})
    assert refused.status_code == 303 and refused.location == "/login"
    assert _cookie(client, "refresh_token", path="/auth") == refresh  # not rotated
    navigated = client.get("/auth/resume?next=/account", headers={"Sec-Fetch-Mode": "navigate"})
    assert navigated.location == "/account"
    assert _cookie(client, "refresh_token", path="/auth") != refresh


# --- error pages (items 3 and 4)


def test_a_database_error_while_naming_the_user_still_shows_the_page(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False)
    make_user(app, "alice")

    def broken() -> Any:
        authenticate()  # the error page will look this user up
        db.session.add(User(username=None))  # NOT NULL: the flush fails for real
        try:
            db.session.flush()
        except IntegrityError:
            pass  # left unrolled-back: the session refuses every query from here
        raise Conflict("That could not be saved.")

    app.add_url_rule("/account/broken", "web.broken_for_test", broken)
    client = app.test_client()
    _log_in(client)
    response = client.get("/account/broken", headers=HTML)
    assert response.status_code == 409 and "text/html" in response.content_type
    assert _notice(response) == "That could not be saved."
    assert "Traceback" not in response.text
    assert client.get("/account").status_code == 200  # the next request is fine


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/account/nope", 404),
    ("GET", "/nope", 404),
    ("PUT", "/login", 405),
    ("DELETE", "/account", 405),
    ("POST", "/auth/resume", 405),  # a page's path under /auth
])
def test_a_browser_gets_a_page_for_a_missing_page(client, method, path, status) -> None:  # type: ignore[no-untyped-def]
    response = client.open(path, method=method, headers=HTML)
    assert response.status_code == status
    assert response.content_type.startswith("text/html")
    assert _notice(response) in ("There is no such page.", "This page does not take that request.")
    if status == 405:
        assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(("method", "path", "headers", "status"), [
    ("GET", "/api/nope", HTML, 404),
    ("GET", "/auth/nope", HTML, 404),
    ("GET", "/admin/api/nope", HTML, 404),
    ("GET", "/.well-known/nope", HTML, 404),
    ("GET", "/oauth/nope", HTML, 404),
    ("GET", "/auth/login", HTML, 405),
    ("PUT", "/healthz", HTML, 405),
    ("GET", "/account/nope", {}, 404),  # no Accept: an API client
    ("GET", "/account/nope", {"Accept": "application/json"}, 404),
    ("PUT", "/login", {"Accept": "*/*"}, 405),
])
def test_api_clients_keep_json_errors(client, method, path, headers, status) -> None:  # type: ignore[no-untyped-def]
    response = client.open(path, method=method, headers=headers)
    assert response.status_code == status
    body = response.get_json()
    assert body["error"] == {404: "not_found", 405: "method_not_allowed"}[status]
    if status == 405:
        assert response.headers["Allow"]


# --- the admin page (item 7) and MFA enrolment (item 8)


def test_disabling_a_user_twice_keeps_them_disabled(app) -> None:  # type: ignore[no-untyped-def]
    make_user(app, "root", roles=("admin",))
    bob = make_user(app, "bob")
    client = app.test_client()
    _log_in(client, "root")

    def disabled() -> bool:
        with app.app_context():
            user = db.session.get(User, bob)
            assert user is not None
            return user.disabled

    for wanted, expected in (("1", True), ("1", True), ("0", False), ("0", False)):
        response = _post(client, f"/admin/users/{bob}/disabled", disabled=wanted)
        assert response.status_code == 303 and response.location == "/admin?n=user_updated"
        assert disabled() is expected
    bad = _post(client, f"/admin/users/{bob}/disabled", disabled="toggle")
    assert bad.status_code == 400 and "text/html" in bad.content_type
    assert _notice(bad) == "Choose whether to disable or enable the user."
    assert disabled() is False


def _enrolment(response: TestResponse) -> tuple[str, str, str]:
    """The secret, the QR image and the hidden ``enrollment`` field a page shows."""
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', response.text)
    qr = re.search(r'<img src="(data:image/svg\+xml;base64,[^"]+)"', response.text)
    shown = re.search(r'name="enrollment" value="([0-9a-f]+)"', response.text)
    assert secret is not None and qr is not None and shown is not None, response.text
    return secret.group(1), qr.group(1), shown.group(1)


def _mfa_on(app: Flask) -> bool:
    with app.app_context():
        from app.core import mfa

        return mfa.is_enabled(db.session(), 1)


def test_a_wrong_enrolment_code_shows_the_same_secret_again(app, clock) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    secret, qr, shown = _enrolment(_post(client, "/account/mfa/enroll"))
    wrong = _post(client, "/account/mfa/confirm", code="000000", current_password=PASSWORD,
                  enrollment=shown)
    assert wrong.status_code == 401
    assert _enrolment(wrong) == (secret, qr, shown)
    assert _notice(wrong) == "That code did not match. Enter the code your app shows now."
    right = _post(client, "/account/mfa/confirm", code=pyotp.TOTP(secret).at(clock()),
                  current_password=PASSWORD, enrollment=shown)
    assert right.status_code == 200 and 'id="recovery-codes"' in right.text
    assert _mfa_on(app)


def test_enrolment_needs_the_password_and_a_wrong_one_shows_the_same_secret_again(
        app, clock) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client)
    enroll = _post(client, "/account/mfa/enroll")
    secret, qr, shown = _enrolment(enroll)
    assert ('<input id="confirm-password" name="current_password" type="password" '
            'autocomplete="current-password" required>') in enroll.text
    code = pyotp.TOTP(secret).at(clock())
    wrong = _post(client, "/account/mfa/confirm", code=code, current_password="not my password",
                  enrollment=shown)
    assert wrong.status_code == 403 and not _mfa_on(app)
    assert _notice(wrong) == "The current password is wrong."
    assert _enrolment(wrong) == (secret, qr, shown)  # this page had shown it already
    missing = _post(client, "/account/mfa/confirm", code=code, enrollment=shown)
    assert missing.status_code == 400 and not _mfa_on(app)
    right = _post(client, "/account/mfa/confirm", code=code, current_password=PASSWORD,
                  enrollment=shown)
    assert right.status_code == 200 and 'id="recovery-codes"' in right.text and _mfa_on(app)


def test_a_thief_with_the_cookies_neither_enrols_nor_sees_the_owners_secret(app, clock) -> None:  # type: ignore[no-untyped-def]
    owner = app.test_client()
    _log_in(owner)
    secret, _, shown = _enrolment(_post(owner, "/account/mfa/enroll"))  # the owner's, pending
    thief = app.test_client()
    for name in ("access_token", "csrf_token"):  # the owner's cookies, stolen
        thief.set_cookie(name, _cookie(owner, name) or "")
    for code in ("000000", pyotp.TOTP(secret).at(clock())):
        refused = _post(thief, "/account/mfa/confirm", code=code, current_password="a guess")
        assert refused.status_code == 403 and not _mfa_on(app)
        assert secret not in refused.text and "totp-secret" not in refused.text
        assert _notice(refused) == ("The current password is wrong. "
                                    "Set up the authenticator app again.")
    # The thief starts an enrolment of their own: the owner's page no longer matches it,
    # so the owner is told to start again rather than shown the thief's secret.
    planted, _, _ = _enrolment(_post(thief, "/account/mfa/enroll"))
    stale = _post(owner, "/account/mfa/confirm", code=pyotp.TOTP(secret).at(clock()),
                  current_password=PASSWORD, enrollment=shown)
    assert stale.status_code == 401 and not _mfa_on(app)
    assert planted not in stale.text and "totp-secret" not in stale.text
    assert _notice(stale) == "That code did not match. Set up the authenticator app again."
