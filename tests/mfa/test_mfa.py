"""TOTP enrolment, login challenge, replay, recovery codes, RFC 9470 step-up (SPEC §7, issue 6)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jwt
import pyotp
import pytest
import segno
from sqlalchemy import select, text

from app.extensions import db
from app.models import AuditEvent, User
from tests.conftest import TEST_KEK
from tests.support.actions import AuthActions
from tests.support.http import call
from tests.support.servers import AppServer
from tests.support.tokens import PASSWORD, bearer, make_user

CHALLENGE = 'Bearer error="insufficient_user_authentication", acr_values="aal2", max_age=300'


class Mfa:
    """An enrolled user: the client, the secret and the clock."""

    def __init__(self, app, clock) -> None:  # type: ignore[no-untyped-def]
        self.app, self.clock = app, clock
        self.auth = AuthActions(app.test_client())
        self.token = self.auth.login().get_json()["access_token"]
        enroll = self.auth.client.post("/mfa/totp/enroll", headers=bearer(self.token))
        assert enroll.status_code == 200, enroll.get_json()
        self.enrollment = enroll.get_json()
        self.secret = self.enrollment["secret"]
        confirm = self.auth.client.post("/mfa/totp/confirm", headers=bearer(self.token),
                                        json={"code": self.code(), "current_password": PASSWORD})
        assert confirm.status_code == 200, confirm.get_json()
        self.recovery_codes = confirm.get_json()["recovery_codes"]

    def code(self) -> str:
        return pyotp.TOTP(self.secret).at(self.clock())

    def next_step(self) -> None:
        self.clock.advance(30)

    def challenge(self) -> str:
        response = AuthActions(self.app.test_client()).login()
        body = response.get_json()
        assert body["mfa_required"] is True
        return str(body["mfa_token"])

    def verify(self, mfa_token: str, code: str, client=None):  # type: ignore[no-untyped-def]
        client = client or self.app.test_client()
        return client.post("/auth/mfa/verify", json={"mfa_token": mfa_token, "code": code})


def _enrolled(make_app, clock, **settings) -> Mfa:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock, **settings)
    make_user(app, "alice")
    clock.advance(3)  # away from a step boundary
    return Mfa(app, clock)


@pytest.fixture
def mfa(make_app, clock) -> Mfa:  # type: ignore[no-untyped-def]
    """Rate limits count real seconds, not the frozen clock: set high except where tested."""
    return _enrolled(make_app, clock, RATELIMIT_MFA="1000/minute")


def test_enrolment_then_login_needs_the_challenge(mfa) -> None:  # type: ignore[no-untyped-def]
    assert len(mfa.recovery_codes) == 10 and len(set(mfa.recovery_codes)) == 10
    assert mfa.enrollment["otpauth_uri"].startswith("otpauth://totp/Tessera:alice?secret=")
    mfa.next_step()
    response = mfa.verify(mfa.challenge(), mfa.code())
    assert response.status_code == 200, response.get_json()
    me = mfa.auth.me(response.get_json()["access_token"]).get_json()
    assert me["amr"] == ["pwd", "otp"] and me["acr"] == "aal2"


def test_qr_code_holds_the_otpauth_uri(mfa) -> None:  # type: ignore[no-untyped-def]
    svg = mfa.enrollment["qr_svg"]
    assert svg.startswith("<svg") and "<script" not in svg
    expected = io.BytesIO()
    segno.make(mfa.enrollment["otpauth_uri"], error="m").save(
        expected, kind="svg", scale=4, xmldecl=False, svgns=True)
    assert svg == expected.getvalue().decode()  # segno's encoding of exactly that URI
    assert pyotp.parse_uri(mfa.enrollment["otpauth_uri"]).secret == mfa.secret


def test_wrong_confirmation_code_keeps_mfa_off(make_app, clock) -> None:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock)
    make_user(app, "alice")
    auth = AuthActions(app.test_client())
    token = auth.login().get_json()["access_token"]
    auth.client.post("/mfa/totp/enroll", headers=bearer(token))
    bad = auth.client.post("/mfa/totp/confirm", headers=bearer(token),
                           json={"code": "000000", "current_password": PASSWORD})
    assert bad.status_code == 401
    assert "access_token" in auth.login().get_json()  # still a plain login


# --- issue 16 item 9: a stolen access token alone cannot turn MFA on

def _mfa_audit(app) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    with app.app_context():
        rows = db.session.execute(select(AuditEvent.event, AuditEvent.reason).where(
            AuditEvent.event.in_(["MFA_FAILURE", "MFA_ENROLLED"]))).all()
    return [(event, reason) for event, reason in rows]


WRONG_PASSWORD = {"error": "forbidden", "message": "The current password is wrong.",
                  "details": {}}


@pytest.mark.parametrize(("password", "status", "error"), [
    (None, 400, {"error": "invalid_request", "message": "The request body is invalid.",
                 "details": {"current_password": ["Missing data for required field."]}}),
    ("", 400, {"error": "invalid_request", "message": "The request body is invalid.",
               "details": {"current_password": ["Length must be between 1 and 256."]}}),
    ("a guess of the thief's", 403, WRONG_PASSWORD),
    (PASSWORD.upper(), 403, WRONG_PASSWORD),
], ids=["missing", "empty", "wrong", "wrong_case"])
def test_a_stolen_token_cannot_enrol_the_thiefs_authenticator(make_app, clock, password, status,
                                                               error) -> None:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock)
    make_user(app, "alice")
    stolen = AuthActions(app.test_client()).login().get_json()["access_token"]
    thief = app.test_client()
    secret = thief.post("/mfa/totp/enroll", headers=bearer(stolen)).get_json()["secret"]
    body = {"code": pyotp.TOTP(secret).at(clock())}
    if password is not None:
        body["current_password"] = password
    refused = thief.post("/mfa/totp/confirm", headers=bearer(stolen), json=body)
    assert refused.status_code == status
    assert refused.get_json() == {**error, "request_id": refused.headers["X-Request-ID"]}
    assert "access_token" in AuthActions(app.test_client()).login().get_json()  # MFA still off
    expected = [("MFA_FAILURE", "enroll_bad_password")] if status == 403 else []
    assert _mfa_audit(app) == expected
    if password:  # no guess is written down anywhere in the trail
        with app.app_context():
            trail = db.session.execute(text("SELECT * FROM audit_events")).all()
        assert password not in repr(trail)
    # The owner, who knows the password, can still confirm that very enrolment.
    owner = thief.post("/mfa/totp/confirm", headers=bearer(stolen),
                       json={"code": body["code"], "current_password": PASSWORD})
    assert owner.status_code == 200, owner.get_json()
    assert AuthActions(app.test_client()).login().get_json()["mfa_required"] is True


def test_the_password_is_checked_before_the_code(make_app, clock) -> None:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock)
    make_user(app, "alice")
    auth = AuthActions(app.test_client())
    token = auth.login().get_json()["access_token"]
    auth.client.post("/mfa/totp/enroll", headers=bearer(token))
    both_wrong = auth.client.post("/mfa/totp/confirm", headers=bearer(token),
                                  json={"code": "000000", "current_password": "nope nope"})
    assert both_wrong.status_code == 403  # says nothing about the code
    assert _mfa_audit(app) == [("MFA_FAILURE", "enroll_bad_password")]


def test_enrolment_passwords_count_with_password_changes(make_app, clock) -> None:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock, RATELIMIT_LOGIN_PER_USERNAME="3/minute")
    make_user(app, "alice")
    auth = AuthActions(app.test_client())
    token = auth.login().get_json()["access_token"]
    secret = auth.client.post("/mfa/totp/enroll", headers=bearer(token)).get_json()["secret"]

    def confirm(password: str):  # type: ignore[no-untyped-def]
        return auth.client.post("/mfa/totp/confirm", headers=bearer(token), json={
            "code": pyotp.TOTP(secret).at(clock()), "current_password": password})

    assert confirm("wrong guess one").status_code == 403
    change = auth.client.post("/auth/password", headers=bearer(token), json={
        "current_password": "wrong guess two", "new_password": "another long passphrase"})
    assert change.status_code == 403
    assert confirm("wrong guess three").status_code == 403
    limited = confirm(PASSWORD)  # the one counter per user is spent: even the right one waits
    assert limited.status_code == 429 and limited.get_json()["error"] == "rate_limited"
    assert "access_token" in AuthActions(app.test_client()).login().get_json()  # MFA still off


def test_a_code_is_accepted_once_at_login_and_step_up(mfa) -> None:  # type: ignore[no-untyped-def]
    mfa.next_step()
    code = mfa.code()
    assert mfa.verify(mfa.challenge(), code).status_code == 200
    assert mfa.verify(mfa.challenge(), code).status_code == 401  # replayed
    step = mfa.auth.client.post("/mfa/step-up", headers=bearer(mfa.token), json={"code": code})
    assert step.status_code == 401


def test_replay_is_refused_by_another_process(mfa, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = AppServer({
        "TESSERA_DATABASE_URL": database_url, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_ISSUER": "http://localhost", "TESSERA_COOKIE_SECURE": "false",
        "TESSERA_INSTANCE_PATH": str(tmp_path / "srv")}).start()
    try:
        # The other process runs on the real clock: use a code for real time, once here...
        real = pyotp.TOTP(mfa.secret)
        code = real.now()
        login = call("POST", server.url + "/auth/login",
                     json_body={"username": "alice", "password": PASSWORD}).json()
        first = call("POST", server.url + "/auth/mfa/verify",
                     json_body={"mfa_token": login["mfa_token"], "code": code})
        assert first.status == 200, first.body
        # ...then the same code in this process (its clock set to real time): refused.
        import datetime as dt

        mfa.clock.set(dt.datetime.now(dt.UTC))
        assert mfa.verify(mfa.challenge(), code).status_code == 401
    finally:
        server.stop()


def test_recovery_code_works_once_and_the_others_still_work(mfa) -> None:  # type: ignore[no-untyped-def]
    first, second = mfa.recovery_codes[0], mfa.recovery_codes[1]
    assert mfa.verify(mfa.challenge(), first).status_code == 200
    assert mfa.verify(mfa.challenge(), first).status_code == 401
    assert mfa.verify(mfa.challenge(), second.upper()).status_code == 200  # normalised
    for code in mfa.recovery_codes[2:]:
        mfa.clock.advance(61)  # stay under the per-user attempt limit
        assert mfa.verify(mfa.challenge(), code.replace("-", "")).status_code == 200


def test_export_needs_a_recent_aal2_token(mfa) -> None:  # type: ignore[no-untyped-def]
    client = mfa.auth.client
    aal1 = client.post("/api/account/export", headers=bearer(mfa.token))
    assert aal1.status_code == 401
    assert aal1.headers["WWW-Authenticate"] == CHALLENGE
    assert aal1.get_json()["error"] == "insufficient_user_authentication"

    mfa.next_step()
    step = client.post("/mfa/step-up", headers=bearer(mfa.token), json={"code": mfa.code()})
    assert step.status_code == 200, step.get_json()
    aal2 = step.get_json()["access_token"]
    assert client.post("/api/account/export", headers=bearer(aal2)).status_code == 200

    mfa.clock.advance(301)  # auth_time now too old for max_age=300
    refreshed = mfa.auth.refresh()
    assert refreshed.status_code == 200
    stale = refreshed.get_json()["access_token"]
    me = mfa.auth.me(stale).get_json()
    assert me["acr"] == "aal2" and me["auth_time"] == mfa.auth.me(aal2).get_json()["auth_time"]
    too_old = client.post("/api/account/export", headers=bearer(stale))
    assert too_old.status_code == 401 and too_old.headers["WWW-Authenticate"] == CHALLENGE


def test_mfa_token_is_good_for_nothing_else(mfa) -> None:  # type: ignore[no-untyped-def]
    mfa_token = mfa.challenge()
    client = mfa.app.test_client()
    assert client.get("/api/me", headers=bearer(mfa_token)).status_code == 401
    assert client.post("/auth/logout", headers=bearer(mfa_token)).status_code == 401
    assert client.post("/mfa/step-up", headers=bearer(mfa_token),
                       json={"code": "123456"}).status_code == 401
    # An access token is not an mfa_token either.
    assert mfa.verify(mfa.token, mfa.code()).status_code == 401
    # And it dies with its lifetime.
    mfa.clock.advance(300 + 31)
    mfa.next_step()
    assert mfa.verify(mfa_token, mfa.code()).status_code == 401


def test_brute_force_hits_429_and_is_audited(make_app, clock) -> None:  # type: ignore[no-untyped-def]
    mfa = _enrolled(make_app, clock)  # the default limit: 5 attempts a minute
    mfa_token = mfa.challenge()
    statuses = [mfa.verify(mfa_token, f"{n:06d}").status_code for n in range(8)]
    assert statuses[:5] == [401] * 5
    assert 429 in statuses
    limited = mfa.verify(mfa_token, "000000")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert limited.get_json()["error"] == "rate_limited"
    with mfa.app.app_context():
        events = db.session.scalars(select(AuditEvent.event)).all()
    assert "RATE_LIMITED" in events and events.count("MFA_FAILURE") >= 5


def test_repeated_failures_spend_the_mfa_token(mfa) -> None:  # type: ignore[no-untyped-def]
    mfa_token = mfa.challenge()
    for n in range(5):
        assert mfa.verify(mfa_token, f"{n:06d}").status_code == 401
    mfa.next_step()
    spent = mfa.verify(mfa_token, mfa.code())  # the right code, too late
    assert spent.status_code == 401
    fresh = mfa.verify(mfa.challenge(), mfa.code())  # a new login attempt works
    assert fresh.status_code == 200


def test_totp_secret_is_not_plaintext(mfa) -> None:  # type: ignore[no-untyped-def]
    with mfa.app.app_context():
        stored = db.session.execute(text("SELECT secret_encrypted FROM totp_credentials")).scalar()
    assert mfa.secret.encode() not in bytes(stored)


def test_disable_and_new_recovery_codes_need_a_recent_step_up(mfa) -> None:  # type: ignore[no-untyped-def]
    client = mfa.auth.client
    assert client.post("/mfa/recovery-codes", headers=bearer(mfa.token)).status_code == 401
    assert client.post("/mfa/totp/disable", headers=bearer(mfa.token)).status_code == 401
    mfa.next_step()
    aal2 = client.post("/mfa/step-up", headers=bearer(mfa.token),
                       json={"code": mfa.code()}).get_json()["access_token"]
    fresh = client.post("/mfa/recovery-codes", headers=bearer(aal2))
    assert fresh.status_code == 200
    new_codes = fresh.get_json()["recovery_codes"]
    assert not set(new_codes) & set(mfa.recovery_codes)
    assert mfa.verify(mfa.challenge(), mfa.recovery_codes[0]).status_code == 401  # old: dead
    assert client.post("/mfa/totp/disable", headers=bearer(aal2)).status_code == 200
    assert "access_token" in AuthActions(mfa.app.test_client()).login().get_json()


def test_rfc6238_vectors_with_our_parameters() -> None:
    vectors = json.loads((Path(__file__).parent.parent / "vectors" / "rfc6238.json").read_text())
    import base64

    secret = base64.b32encode(b"12345678901234567890").decode()
    for vector in vectors:
        totp = pyotp.TOTP(secret, digits=8, interval=30)
        assert totp.at(vector["time"]) == vector["totp"], vector


def test_step_up_without_a_live_session_does_not_spend_the_code(make_app, clock) -> None:  # type: ignore[no-untyped-def]
    legacy_secret = "old-shared-secret-0123456789-abcdef"
    mfa = _enrolled(make_app, clock, RATELIMIT_MFA="1000/minute", MIGRATION_PHASE="dual",
                    LEGACY_HS256_SECRETS=[legacy_secret])
    with mfa.app.app_context():
        uid = db.session.scalars(select(User.id)).one()
    legacy = jwt.encode({"sub": str(uid), "exp": int(clock().timestamp()) + 86400}, legacy_secret,
                        algorithm="HS256")  # the old system's token: no session behind it
    mfa.next_step()
    code = mfa.code()
    refused = mfa.auth.client.post("/mfa/step-up", headers=bearer(legacy), json={"code": code})
    assert refused.status_code == 401
    assert refused.get_json()["message"] == "Step-up needs a live session; log in again."
    step = mfa.auth.client.post("/mfa/step-up", headers=bearer(mfa.token), json={"code": code})
    assert step.status_code == 200, step.get_json()  # the code was still unused
