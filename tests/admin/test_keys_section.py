"""The keys section of the admin API and page (issue 19): age, state, when the active key
is due, when each retired key expires, and what the JWKS publishes now."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.actions import AuthActions
from tests.support.tokens import bearer, make_user


@pytest.fixture
def app(make_app, clock):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock, KEY_ROTATION_INTERVAL=86400,
                   ACCESS_TOKEN_TTL=600, CLOCK_SKEW_LEEWAY=30, KEYRING_REFRESH=1)
    make_user(app, "root", roles=("admin",))
    return app


def _keys(app) -> dict:  # type: ignore[no-untyped-def,type-arg]
    token = AuthActions(app.test_client()).login(username="root").get_json()["access_token"]
    return app.test_client().get("/admin/api/keys", headers=bearer(token)).get_json()  # type: ignore[no-any-return]


def test_keys_show_age_due_date_expiry_and_the_jwks(app, clock) -> None:  # type: ignore[no-untyped-def]
    start = clock()
    clock.advance(3600)
    body = _keys(app)
    by_state = {k["state"]: k for k in body["keys"]}
    active = by_state["active"]
    assert active["age_seconds"] == 3600 and active["published"] is True
    assert active["rotation_due_at"] == (start + timedelta(days=1)).isoformat()
    assert active["rotation_overdue"] is False and active["expires_at"] is None
    assert by_state["standby"]["rotation_due_at"] is None
    assert sorted(body["jwks_kids"]) == sorted(k["kid"] for k in body["keys"])

    clock.advance(86400)
    assert next(k for k in _keys(app)["keys"] if k["state"] == "active")["rotation_overdue"]
    rotated = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    retired_at = clock()
    clock.advance(2)  # past KEYRING_REFRESH: this worker's JWKS has the new standby
    body = _keys(app)
    retired = next(k for k in body["keys"] if k["state"] == "retired")
    assert retired["expires_at"] == (retired_at + timedelta(seconds=630)).isoformat()
    assert retired["kid"] in body["jwks_kids"] and len(body["jwks_kids"]) == 3

    clock.advance(631)
    body = _keys(app)
    expired = next(k for k in body["keys"] if k["kid"] == retired["kid"])
    assert expired["state"] == "expired" and expired["published"] is False
    clock.advance(2)
    assert retired["kid"] not in _keys(app)["jwks_kids"]


def test_admin_page_shows_the_same(app, clock) -> None:  # type: ignore[no-untyped-def]
    clock.advance(86400 + 60)
    auth = AuthActions(app.test_client())
    auth.login(username="root")
    html = auth.client.get("/admin").get_data(as_text=True)
    assert "rotation overdue" in html and "next to sign" in html
    assert "The JWKS publishes 2 key(s) now." in html
