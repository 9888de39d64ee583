"""Real answers match the OpenAPI document (issue 20, acceptance 6).

One walk through every JSON route with the test client (anonymous, a user, a
user with MFA, a user with a passkey, an admin, a service client, an event
receiver, a legacy token); every answer,
success or error, must be documented for its status and match the schema the
document gives it. At the end every documented 2xx answer has been seen.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import jwt
import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from werkzeug.test import TestResponse

from app import state
from app.core.clock import FrozenClock
from tests.support.actions import AuthActions
from tests.support.mfa import enroll_totp
from tests.support.tokens import PASSWORD, bearer, make_user
from tests.support.webauthn import SoftAuthenticator

SECRET = "old-shared-secret-0123456789-abcdef"
NEW_PASSWORD = "another long passphrase 42"


class CheckedClient:
    """A test client whose every answer is checked against the app's OpenAPI document."""

    def __init__(self, client: FlaskClient, document: dict[str, Any],
                 seen: set[tuple[str, str]]) -> None:
        self.client = client
        self.document = document
        self.seen = seen
        self.auth = AuthActions(client)

    def __call__(self, method: str, url: str, expect: int = 200, **kwargs: Any) -> Any:
        if method != "GET":  # the cookie session's CSRF header, as the pages' scripts send
            kwargs["headers"] = {**self.auth.csrf_headers(), **kwargs.get("headers", {})}
        response: TestResponse = self.client.open(url, method=method, **kwargs)
        assert response.status_code == expect, (method, url, response.get_data(as_text=True))
        template, operation = self._operation(method, url.split("?", 1)[0])
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, f"{method} {template}: {response.status_code} undocumented"
        if response.status_code == 304:
            return None
        content_type = response.mimetype
        assert content_type in documented["content"], (template, content_type)
        schema = documented["content"][content_type]["schema"]
        body = response.get_data(as_text=True) if content_type == "text/plain" \
            else response.get_json()
        # The document's components beside the schema, so that its $refs resolve.
        errors = sorted(Draft202012Validator({**schema, "components": self.document[
            "components"]}).iter_errors(body), key=str)
        assert not errors, f"{method} {template} {response.status_code}: {errors[0].message}"
        if 200 <= response.status_code < 300:
            self.seen.add((method.lower(), template))
        return body

    def _operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for template, operations in self.document["paths"].items():
            if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", template), path) \
                    and method.lower() in operations:
                return template, operations[method.lower()]
        raise AssertionError(f"{method} {path} is not in the document")


@pytest.fixture
def app(make_app, clock):  # type: ignore[no-untyped-def]
    app: Flask = make_app(clock=clock, COOKIE_SECURE=False, REGISTRATION_ENABLED=True,
                          LEGACY_HS256_SECRETS=[SECRET], MIGRATION_PHASE="dual")
    make_user(app, "root", roles=("admin",))
    make_user(app, "alice")
    make_user(app, "mallory")  # id 3: the legacy token names her
    return app


def _walk_anonymous(call: CheckedClient, app: Flask) -> None:
    call("GET", "/healthz")
    call("GET", "/readyz")
    call("GET", "/openapi.json")
    call("GET", "/metrics")
    etag = call.client.get("/.well-known/jwks.json").headers["ETag"]
    call("GET", "/.well-known/jwks.json")
    call("GET", "/.well-known/jwks.json", expect=304, headers={"If-None-Match": etag})
    call("GET", "/.well-known/oauth-authorization-server")
    call("GET", "/.well-known/oauth-protected-resource")
    call("GET", "/.well-known/ssf-configuration")
    call("POST", "/auth/register", expect=201, json={"username": "newcomer",
                                                     "password": PASSWORD})
    call("POST", "/auth/login", expect=401, json={"username": "alice", "password": "wrong"})
    call("POST", "/auth/login", expect=400, json={"username": "alice"})
    call("GET", "/api/me", expect=401)


def _walk_user(call: CheckedClient, app: Flask) -> None:
    call("POST", "/auth/login", json={"username": "alice", "password": PASSWORD})
    call("GET", "/api/me")
    note = call("POST", "/api/notes", expect=201, json={"title": "t", "body": "b"})
    call("GET", "/api/notes")
    call("GET", f"/api/notes/{note['id']}")
    call("DELETE", f"/api/notes/{note['id']}")
    call("GET", "/api/notes/999", expect=404)
    call("POST", "/auth/refresh")
    other = CheckedClient(app.test_client(), call.document, call.seen)
    other_id = other("POST", "/auth/login",
                     json={"username": "alice", "password": PASSWORD})["session_id"]
    sessions = call("GET", "/auth/sessions")["sessions"]
    assert any(s["id"] == other_id for s in sessions)
    call("DELETE", f"/auth/sessions/{other_id}")
    call("POST", "/auth/password",
         json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    enrollment = call("POST", "/mfa/totp/enroll")
    totp = pyotp.TOTP(enrollment["secret"])
    with app.app_context():
        code = totp.at(state.now())
        later = totp.at(state.now(), counter_offset=1)
    call("POST", "/mfa/totp/confirm",
         json={"current_password": NEW_PASSWORD, "code": code})
    call("POST", "/mfa/step-up", json={"code": later})
    call("POST", "/api/account/export")
    call("POST", "/mfa/recovery-codes")
    call("POST", "/mfa/totp/disable")
    call("POST", "/auth/logout")
    call("POST", "/auth/login", json={"username": "alice", "password": NEW_PASSWORD})
    call("POST", "/auth/logout-all")


def _walk_second_steps(call: CheckedClient, app: Flask) -> None:
    totp = enroll_totp(app, "mallory")
    challenge = call("POST", "/auth/login", json={"username": "mallory", "password": PASSWORD})
    with app.app_context():
        code = totp.at(state.now(), counter_offset=1)
    call("POST", "/auth/mfa/verify", json={"mfa_token": challenge["mfa_token"], "code": code})
    call("POST", "/auth/mfa/verify", expect=401,
         json={"mfa_token": challenge["mfa_token"], "code": code})


def _walk_passkeys(call: CheckedClient, app: Flask) -> None:
    """A passkey registered, renamed, used to log in (API and login page), to step up,
    and removed."""
    make_user(app, "pat")
    key = SoftAuthenticator()
    call("POST", "/auth/login", json={"username": "pat", "password": PASSWORD})
    options = call("POST", "/mfa/passkeys/register/options",
                   json={"current_password": PASSWORD})
    passkey = call("POST", "/mfa/passkeys", expect=201,
                   json={"credential": key.create(options), "name": "Laptop"})
    call("GET", "/mfa/passkeys")
    call("PATCH", f"/mfa/passkeys/{passkey['id']}", json={"name": "Work key"})
    call("POST", "/mfa/passkeys/step-up", expect=400, json={})

    visitor = CheckedClient(app.test_client(), call.document, call.seen)
    challenge = visitor("POST", "/auth/login", json={"username": "pat", "password": PASSWORD})
    options = visitor("POST", "/auth/mfa/passkey/options",
                      json={"mfa_token": challenge["mfa_token"]})
    visitor("POST", "/auth/mfa/passkey", expect=401, json={
        "mfa_token": challenge["mfa_token"], "credential": {"id": "forged"}})
    visitor("POST", "/auth/mfa/passkey", json={
        "mfa_token": challenge["mfa_token"], "credential": key.get(options)})

    page = app.test_client()
    page.get("/login")  # the CSRF cookie the form echoes
    csrf = page.get_cookie("csrf_token")
    assert csrf is not None
    page.post("/login", data={"username": "pat", "password": PASSWORD,
                              "csrf_token": csrf.value})
    in_page = CheckedClient(page, call.document, call.seen)
    options = in_page("POST", "/login/mfa/passkey/options")
    in_page("POST", "/login/mfa/passkey", json={"credential": key.get(options)})

    options = call("POST", "/mfa/passkeys/step-up/options")
    call("POST", "/mfa/passkeys/step-up", json={"credential": key.get(options)})
    call("DELETE", f"/mfa/passkeys/{passkey['id']}")


def _walk_admin(call: CheckedClient, app: Flask) -> None:
    call("POST", "/auth/login", json={"username": "root", "password": PASSWORD})
    user = call("POST", "/admin/api/users", expect=201,
                json={"username": "temp", "password": PASSWORD, "temporary": True})
    call("GET", "/admin/api/users?limit=1")
    call("PATCH", f"/admin/api/users/{user['id']}", json={"roles": ["staff"]})
    call("POST", f"/admin/api/users/{user['id']}/reset-mfa")
    call("GET", f"/admin/api/users/{user['id']}/passkeys")
    temporary = call("POST", f"/admin/api/users/{user['id']}/temporary-password")[
        "temporary_password"]
    visitor = CheckedClient(app.test_client(), call.document, call.seen)
    forced = visitor("POST", "/auth/login", json={"username": "temp", "password": temporary})
    visitor("POST", "/auth/password/temporary", json={
        "password_change_token": forced["password_change_token"], "new_password": NEW_PASSWORD})
    sessions = call("GET", f"/admin/api/users/{user['id']}/sessions")["sessions"]
    call("DELETE", f"/admin/api/sessions/{sessions[0]['id']}")
    call("POST", f"/admin/api/users/{user['id']}/revoke-tokens")
    call("POST", "/admin/api/tokens/revoke", json={"jti": "some-jti"})
    call("GET", "/admin/api/keys")
    rotated = call("POST", "/admin/api/keys/rotate", json={"force": True})
    call("POST", f"/admin/api/keys/{rotated['standby_kid']}/revoke")
    call("GET", "/admin/api/migration")
    call("GET", "/admin/api/migration/traffic")
    call("PUT", "/admin/api/migration", json={"phase": "dual"})
    call("GET", "/admin/api/audit?limit=5")
    _walk_clients(call, app)


def _walk_clients(call: CheckedClient, app: Flask) -> None:
    client = call("POST", "/admin/api/clients", expect=201,
                  json={"name": "resource server"})
    call("GET", "/admin/api/clients")
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode())
    service = {"Authorization": f"Basic {basic.decode()}"}
    alice = AuthActions(app.test_client())
    token = alice.login(username="alice", password=NEW_PASSWORD).get_json()["access_token"]
    call("POST", "/oauth/introspect", headers=service, data={"token": token})
    call("POST", "/oauth/introspect", headers=service, data={"token": "nonsense"})
    call("POST", "/oauth/revoke", headers=service, data={"token": token})
    call("PATCH", f"/admin/api/clients/{client['client_id']}",
         json={"scopes": ["introspect"]})
    call("POST", f"/admin/api/clients/{client['client_id']}/rotate-secret")
    call("DELETE", f"/admin/api/clients/{client['client_id']}")
    _walk_receiver(call, app)


def _walk_receiver(call: CheckedClient, app: Flask) -> None:
    """A service client with the ``events`` scope reads its stream and polls it."""
    client = call("POST", "/admin/api/clients", expect=201,
                  json={"name": "receiver", "scopes": ["events"]})
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode())
    receiver = {"Authorization": f"Basic {basic.decode()}"}
    call("GET", "/ssf/stream", headers=receiver)
    call("GET", "/ssf/stream", expect=401)
    # The walk's revocations are pending for it: SETs signed for this receiver.
    answer = call("POST", "/ssf/poll", headers=receiver, json={"returnImmediately": True})
    call("POST", "/ssf/poll", headers=receiver,
         json={"returnImmediately": True, "ack": list(answer["sets"]), "maxEvents": 0})


def _walk_legacy(call: CheckedClient, app: Flask) -> None:
    with app.app_context():
        exp = int(state.now().timestamp()) + 600
    legacy = jwt.encode({"sub": "3", "exp": exp}, SECRET, algorithm="HS256")
    call("POST", "/auth/token/exchange", headers=bearer(legacy))


def test_every_answer_matches_the_document(app: Flask, clock: FrozenClock) -> None:
    document = app.test_client().get("/openapi.json").get_json()
    seen: set[tuple[str, str]] = set()

    def fresh() -> CheckedClient:
        return CheckedClient(app.test_client(), document, seen)

    for walk in (_walk_anonymous, _walk_user, _walk_second_steps, _walk_passkeys, _walk_admin,
                 _walk_legacy):
        # A login in the second of a password change counts as before it (SPEC §6).
        clock.advance(2)
        walk(fresh(), app)
    documented = {(method, path) for path, operations in document["paths"].items()
                  for method, operation in operations.items()
                  if any(code.startswith("2") for code in operation["responses"])}
    assert documented - seen == set()


def test_every_success_has_a_real_schema(app: Flask) -> None:
    """No 2xx answer is documented as a bare ``{"type": "object"}``."""
    document = app.test_client().get("/openapi.json").get_json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code, answer in operation["responses"].items():
                if not code.startswith("2"):
                    continue
                for content in answer["content"].values():
                    assert content["schema"] != {"type": "object"}, (method, path, code)
                    assert content["schema"], (method, path, code)
