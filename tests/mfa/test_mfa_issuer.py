"""MFA_ISSUER names the service in authenticator apps (issue 19)."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlparse

from tests.support.actions import AuthActions
from tests.support.tokens import bearer, make_user


def _label(app) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    make_user(app, "alice")
    client = app.test_client()
    token = AuthActions(client).login().get_json()["access_token"]
    uri = urlparse(client.post("/mfa/totp/enroll", headers=bearer(token)).get_json()["otpauth_uri"])
    return unquote(uri.path), parse_qs(uri.query)["issuer"][0]


def test_default_issuer_label(make_app) -> None:  # type: ignore[no-untyped-def]
    assert _label(make_app(COOKIE_SECURE=False)) == ("/Tessera:alice", "Tessera")


def test_mfa_issuer_setting_names_the_account(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, MFA_ISSUER="Acme SSO")
    assert _label(app) == ("/Acme SSO:alice", "Acme SSO")
