"""Passkeys through the JSON API with a software authenticator (issue 22, acceptance 2).

Each forged or stale answer is refused with a JSON error naming the failed
check, leaves an audit row, and changes nothing: no session, no counter moved,
no passkey stored.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from app.extensions import db
from app.models import AuditEvent, AuthSession, Passkey, WebauthnChallenge
from tests.support.actions import AuthActions
from tests.support.tokens import PASSWORD, bearer, make_user
from tests.support.webauthn import SoftAuthenticator

CHALLENGE = 'Bearer error="insufficient_user_authentication", acr_values="aal2", max_age=300'


class Keys:
    """A user, their client and token, and the authenticators they hold."""

    def __init__(self, app, clock, username: str = "alice",  # type: ignore[no-untyped-def]
                 roles: tuple[str, ...] = ()) -> None:
        self.app, self.clock, self.username = app, clock, username
        self.user_id = make_user(app, username, roles)
        self.client: FlaskClient = app.test_client()
        self.token = AuthActions(self.client).login(username).get_json()["access_token"]

    def post(self, path: str, body: dict[str, Any] | None = None,
             token: str | None = None) -> TestResponse:
        return self.client.post(path, json=body or {}, headers=bearer(token or self.token))

    def register(self, authenticator: SoftAuthenticator, name: str = "Laptop",
                 **forged: Any) -> TestResponse:
        options = self.post("/mfa/passkeys/register/options", {"current_password": PASSWORD})
        assert options.status_code == 200, options.get_json()
        return self.post("/mfa/passkeys", {"credential": authenticator.create(
            options.get_json(), **forged), "name": name})

    def mfa_token(self) -> str:
        body = AuthActions(self.app.test_client()).login(self.username).get_json()
        assert body["mfa_required"] is True
        return str(body["mfa_token"])

    def login_options(self, mfa_token: str) -> dict[str, Any]:
        response = self.client.post("/auth/mfa/passkey/options", json={"mfa_token": mfa_token})
        assert response.status_code == 200, response.get_json()
        return dict(response.get_json())

    def login(self, mfa_token: str, credential: dict[str, Any]) -> TestResponse:
        return self.app.test_client().post("/auth/mfa/passkey", json={
            "mfa_token": mfa_token, "credential": credential})

    def step_up(self, authenticator: SoftAuthenticator) -> TestResponse:
        options = self.post("/mfa/passkeys/step-up/options")
        assert options.status_code == 200, options.get_json()
        return self.post("/mfa/passkeys/step-up", {"credential": authenticator.get(
            options.get_json())})

    def count(self, model: Any) -> int:
        with self.app.app_context():
            return int(db.session.scalar(select(func.count()).select_from(model)) or 0)

    def sign_counts(self) -> list[int]:
        with self.app.app_context():
            return list(db.session.scalars(select(Passkey.sign_count).order_by(Passkey.id)))

    def audits(self, event: str) -> list[str | None]:
        with self.app.app_context():
            return list(db.session.scalars(select(AuditEvent.reason).where(
                AuditEvent.event == event).order_by(AuditEvent.id)))


@pytest.fixture
def app(make_app, clock):  # type: ignore[no-untyped-def]
    # Rate limits count real seconds, not the frozen clock: high except where tested.
    return make_app(COOKIE_SECURE=False, clock=clock, RATELIMIT_MFA="1000/minute")


@pytest.fixture
def alice(app, clock) -> Keys:  # type: ignore[no-untyped-def]
    return Keys(app, clock)


@pytest.fixture
def key() -> SoftAuthenticator:
    return SoftAuthenticator()


def _me(keys: Keys, token: str) -> dict[str, Any]:
    return dict(keys.client.get("/api/me", headers=bearer(token)).get_json())


def test_register_then_login_with_password_and_passkey(alice, key) -> None:  # type: ignore[no-untyped-def]
    registered = alice.register(key)
    assert registered.status_code == 201, registered.get_json()
    assert registered.get_json()["name"] == "Laptop" and registered.get_json()["kind"] == "hwk"
    assert alice.audits("PASSKEY_REGISTERED") == [None]

    mfa_token = alice.mfa_token()  # a passkey alone makes the login two-step
    response = alice.login(mfa_token, key.get(alice.login_options(mfa_token)))
    assert response.status_code == 200, response.get_json()
    me = _me(alice, response.get_json()["access_token"])
    assert me["amr"] == ["pwd", "hwk", "user"] and me["acr"] == "aal2"
    assert alice.sign_counts() == [1]
    # The challenge token is spent: a second answer to it opens nothing.
    again = alice.app.test_client().post("/auth/mfa/passkey/options",
                                         json={"mfa_token": mfa_token})
    assert again.status_code == 401 and again.get_json()["error"] == "invalid_token"


def test_a_synced_passkey_is_swk(app, clock) -> None:  # type: ignore[no-untyped-def]
    bob, key = Keys(app, clock, "bob"), SoftAuthenticator(backup_eligible=True)
    assert bob.register(key).get_json()["kind"] == "swk"
    mfa_token = bob.mfa_token()
    token = bob.login(mfa_token, key.get(bob.login_options(mfa_token))).get_json()["access_token"]
    assert _me(bob, token)["amr"] == ["pwd", "swk", "user"]


def test_registration_proves_the_password_or_a_recent_step_up(alice, key, clock) -> None:  # type: ignore[no-untyped-def]
    missing = alice.post("/mfa/passkeys/register/options")
    assert missing.status_code == 400 and "current_password" in missing.get_json()["details"]
    wrong = alice.post("/mfa/passkeys/register/options", {"current_password": "x" * 12})
    assert wrong.status_code == 403 and wrong.get_json()["error"] == "forbidden"
    assert alice.register(key).status_code == 201

    # With a second factor, a second passkey needs a recent aal2, whatever the password.
    second = SoftAuthenticator()
    refused = alice.post("/mfa/passkeys/register/options", {"current_password": PASSWORD})
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == CHALLENGE
    stepped = alice.step_up(key)
    assert stepped.status_code == 200, stepped.get_json()
    alice.token = stepped.get_json()["access_token"]
    assert _me(alice, alice.token)["acr"] == "aal2"
    assert alice.register(second, "Phone").status_code == 201
    listed = alice.client.get("/mfa/passkeys", headers=bearer(alice.token)).get_json()
    assert [p["name"] for p in listed["passkeys"]] == ["Laptop", "Phone"]
    assert "public_key" not in listed["passkeys"][0]


def _refused(response: TestResponse, reason: str) -> None:
    assert response.status_code == 401, response.get_json()
    body = response.get_json()
    assert body["error"] == "unauthorized" and body["details"] == {"reason": reason}
    assert body["message"]


@pytest.mark.parametrize(("forgery", "reason"), [
    ({"origin": "http://evil.example"}, "wrong_origin"),
    ({"rp_id": "evil.example"}, "wrong_rp_id"),
    ({"count": 0}, "sign_count"),  # after one use at 1: backwards
])
def test_forged_login_answers_are_refused(alice, key, forgery, reason) -> None:  # type: ignore[no-untyped-def]
    alice.register(key)
    first = alice.mfa_token()
    assert alice.login(first, key.get(alice.login_options(first))).status_code == 200
    sessions = alice.count(AuthSession)

    mfa_token = alice.mfa_token()
    _refused(alice.login(mfa_token, key.get(alice.login_options(mfa_token), **forgery)), reason)
    assert alice.audits("MFA_FAILURE") == [f"passkey_{reason}"]
    assert alice.count(AuthSession) == sessions and alice.sign_counts() == [1]


def test_a_replayed_assertion_and_a_reused_challenge_are_refused(alice, key) -> None:  # type: ignore[no-untyped-def]
    alice.register(key)
    mfa_token = alice.mfa_token()
    options = alice.login_options(mfa_token)
    answer = key.get(options)
    assert alice.login(mfa_token, answer).status_code == 200
    sessions = alice.count(AuthSession)

    later = alice.mfa_token()
    alice.login_options(later)  # a live challenge exists, but not the one signed
    _refused(alice.login(later, answer), "challenge")  # the same bytes again
    _refused(alice.login(later, key.get(options)), "challenge")  # a new signature, old challenge
    assert alice.audits("MFA_FAILURE") == ["passkey_challenge"] * 2
    assert alice.count(AuthSession) == sessions and alice.sign_counts() == [1]


def test_a_challenge_is_bound_to_its_ceremony_and_short_lived(alice, key, clock) -> None:  # type: ignore[no-untyped-def]
    alice.register(key)
    step_options = alice.post("/mfa/passkeys/step-up/options").get_json()
    mfa_token = alice.mfa_token()
    _refused(alice.login(mfa_token, key.get(step_options)), "challenge")  # a step-up's
    options = alice.login_options(mfa_token)
    clock.advance(121)  # WEBAUTHN_TIMEOUT is 120 s (and the mfa_token lives 300 s)
    _refused(alice.login(mfa_token, key.get(options)), "challenge")
    assert alice.sign_counts() == [0]


def test_another_users_credential_is_refused(app, clock, alice, key) -> None:  # type: ignore[no-untyped-def]
    alice.register(key)
    bob, bobs_key = Keys(app, clock, "bob"), SoftAuthenticator()
    assert bob.register(bobs_key).status_code == 201
    sessions = alice.count(AuthSession)

    mfa_token = alice.mfa_token()
    _refused(alice.login(mfa_token, bobs_key.get(alice.login_options(mfa_token))),
             "unknown_credential")
    step = bob.post("/mfa/passkeys/step-up/options").get_json()
    _refused(bob.post("/mfa/passkeys/step-up", {"credential": key.get(step)}),
             "unknown_credential")
    assert alice.audits("MFA_FAILURE") == ["passkey_unknown_credential"] * 2
    assert alice.count(AuthSession) == sessions and alice.sign_counts() == [0, 0]
    # Nor can bob register alice's credential to his account, or rename or remove hers.
    bob.token = bob.step_up(bobs_key).get_json()["access_token"]
    assert bob.register(key).get_json()["details"] == {"reason": "already_registered"}
    hers = alice.client.get("/mfa/passkeys", headers=bearer(alice.token)).get_json()
    passkey_id = hers["passkeys"][0]["id"]
    renamed = bob.client.patch(f"/mfa/passkeys/{passkey_id}", json={"name": "mine"},
                               headers=bearer(bob.token))
    assert renamed.status_code == 404
    removed = bob.client.delete(f"/mfa/passkeys/{passkey_id}", headers=bearer(bob.token))
    assert removed.status_code == 404 and alice.count(Passkey) == 2


def test_a_forged_registration_stores_nothing(alice, key) -> None:  # type: ignore[no-untyped-def]
    _refused(alice.register(key, origin="http://evil.example"), "wrong_origin")
    _refused(alice.register(key, rp_id="evil.example"), "wrong_rp_id")
    assert alice.count(Passkey) == 0
    assert alice.audits("MFA_FAILURE") == ["passkey_wrong_origin", "passkey_wrong_rp_id"]
    malformed = alice.post("/mfa/passkeys", {"credential": {"response": []}})
    _refused(malformed, "malformed")


def test_removal_needs_a_recent_step_up_by_passkey(alice, key, clock) -> None:  # type: ignore[no-untyped-def]
    alice.register(key)
    mfa_token = alice.mfa_token()
    token = alice.login(mfa_token, key.get(alice.login_options(mfa_token))).get_json()[
        "access_token"]
    passkey_id = alice.client.get("/mfa/passkeys", headers=bearer(token)).get_json()[
        "passkeys"][0]["id"]
    renamed = alice.client.patch(f"/mfa/passkeys/{passkey_id}", json={"name": "Work key"},
                                 headers=bearer(token))
    assert renamed.get_json() == {"id": passkey_id, "name": "Work key"}

    clock.advance(301)  # the login's auth_time is too old now (RFC 9470 max_age)
    stale = alice.client.delete(f"/mfa/passkeys/{passkey_id}", headers=bearer(token))
    assert stale.status_code == 401 and stale.headers["WWW-Authenticate"] == CHALLENGE
    before = _me(alice, token)["auth_time"]
    alice.token = token
    stepped = alice.step_up(key)
    assert stepped.status_code == 200, stepped.get_json()
    fresh = stepped.get_json()["access_token"]
    assert _me(alice, fresh)["auth_time"] == before + 301
    removed = alice.client.delete(f"/mfa/passkeys/{passkey_id}", headers=bearer(fresh))
    assert removed.get_json() == {"removed": True, "id": passkey_id}
    assert alice.count(Passkey) == 0 and alice.audits("PASSKEY_REMOVED") == [None]
    assert "access_token" in AuthActions(alice.app.test_client()).login().get_json()


@pytest.mark.parametrize(("settings", "rp_id", "origin"), [
    ({"ISSUER": "https://auth.example.com:8443/tessera"}, "auth.example.com",
     "https://auth.example.com:8443"),
    ({"ISSUER": "https://auth.example.com", "WEBAUTHN_RP_ID": "example.com",
      "WEBAUTHN_ORIGIN": "https://login.example.com/"}, "example.com",
     "https://login.example.com"),
])
def test_the_relying_party_comes_from_the_issuer_unless_set(settings, rp_id, origin) -> None:  # type: ignore[no-untyped-def]
    from app.config import load_settings

    loaded = load_settings(settings)
    assert (loaded.rp_id, loaded.rp_origin) == (rp_id, origin)
    assert loaded.webauthn_timeout.total_seconds() == 120


def test_options_name_the_relying_party_and_the_users_passkeys(alice, key) -> None:  # type: ignore[no-untyped-def]
    options = alice.post("/mfa/passkeys/register/options",
                         {"current_password": PASSWORD}).get_json()["publicKey"]
    assert options["rp"] == {"id": "localhost", "name": "Tessera"}
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none" and options["timeout"] == 120000
    alice.post("/mfa/passkeys", {"credential": key.create({"publicKey": options})})
    mfa_token = alice.mfa_token()
    allowed = alice.login_options(mfa_token)["publicKey"]["allowCredentials"]
    assert [c["id"] for c in allowed] == [key.id]


def test_the_login_pages_passkey_step_answers_json(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.get("/login")  # sets the CSRF cookie the page's script sends back
    csrf = client.get_cookie("csrf_token")
    assert csrf is not None
    ended = client.post("/login/mfa/passkey/options", json={},
                        headers={"X-CSRF-Token": csrf.value})
    assert ended.status_code == 401 and ended.get_json()["error"] == "invalid_token"
    forged = client.post("/login/mfa/passkey", json={"credential": {}})
    assert forged.status_code == 403 and forged.get_json()["error"] == "csrf_failed"


def test_new_options_replace_the_ceremonys_earlier_challenge(alice, key) -> None:  # type: ignore[no-untyped-def]
    alice.register(key)
    first = alice.post("/mfa/passkeys/step-up/options").get_json()
    second = alice.post("/mfa/passkeys/step-up/options").get_json()
    mfa_token = alice.mfa_token()
    alice.login_options(mfa_token)  # another ceremony's challenge is left alone
    assert alice.count(WebauthnChallenge) == 2  # one live challenge per ceremony
    _refused(alice.post("/mfa/passkeys/step-up", {"credential": key.get(first)}), "challenge")
    stepped = alice.post("/mfa/passkeys/step-up", {"credential": key.get(second)})
    assert stepped.status_code == 200, stepped.get_json()
    assert alice.count(WebauthnChallenge) == 1  # the login's, still waiting


def test_passkey_answers_and_options_are_rate_limited(make_app, clock, key) -> None:  # type: ignore[no-untyped-def]
    # An hour's window: a minute's could end mid-test (the limits count real seconds).
    alice = Keys(make_app(COOKIE_SECURE=False, clock=clock, RATELIMIT_MFA="3/hour"), clock)
    alice.register(key)
    mfa_token = alice.mfa_token()
    for _ in range(3):
        options = alice.login_options(mfa_token)
    limited = alice.client.post("/auth/mfa/passkey/options", json={"mfa_token": mfa_token})
    assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 3600
    # Options have their own counter: the answers' budget is whole.
    for _ in range(2):
        _refused(alice.login(mfa_token, {"response": {}}), "malformed")
    assert alice.login(mfa_token, key.get(options)).status_code == 200
    refused = alice.login(alice.mfa_token(), key.get(options))
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.get_json()["error"] == "rate_limited"

    # Alice's own attempts are spent (a limit per user too): Bob steps up from her address.
    bob = Keys(alice.app, clock, "bob")
    stepped = [bob.post("/mfa/passkeys/step-up", {"credential": {"response": {}}})
               for _ in range(4)]
    assert [r.status_code for r in stepped] == [401] * 3 + [429]
    assert int(stepped[-1].headers["Retry-After"]) > 0
