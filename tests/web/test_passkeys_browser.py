"""Passkeys in a real browser: Chromium with a CDP virtual authenticator (issue 22, acceptance 1).

The authenticator is Chromium's own (``WebAuthn.addVirtualAuthenticator``:
CTAP2, internal transport, resident keys, user verification), so the pages'
script, the browser's WebAuthn code and Tessera's checks all run for real.
WebAuthn needs a secure context and a domain RP id: the pages are opened at
``http://localhost:<port>`` (ISSUER ``http://localhost``, so RP id
``localhost``) with WEBAUTHN_ORIGIN naming that port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import TEST_KEK
from tests.support.servers import AppServer
from tests.support.tokens import PASSWORD, make_user
from tests.web.test_browser import _log_in, _notice, _shot, browser, open_context

__all__ = ["browser", "open_context"]  # the fixtures, shared with the other page tests

pytestmark = pytest.mark.slow


@pytest.fixture
def server(app, database_url, tmp_path) -> Iterator[AppServer]:  # type: ignore[no-untyped-def]
    """Tessera under gunicorn, its passkey origin the localhost URL the browser opens."""
    started = AppServer({"TESSERA_DATABASE_URL": database_url,
                         "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
                         "TESSERA_ISSUER": "http://localhost", "TESSERA_COOKIE_SECURE": "false",
                         "TESSERA_INSTANCE_PATH": str(tmp_path / "srv")})
    started.env["TESSERA_WEBAUTHN_ORIGIN"] = f"http://localhost:{started.port}"
    started.start()
    yield started
    started.stop()


def _with_authenticator(context: BrowserContext, page: Page) -> str:
    """Plug a virtual platform authenticator into ``page``'s browser tab."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True}})
    return str(added["authenticatorId"])


def test_register_log_in_step_up_and_remove_a_passkey(  # type: ignore[no-untyped-def]
        app, server, open_context: Callable[[], tuple[BrowserContext, Page]]) -> None:
    make_user(app, "alice", roles=("admin",))
    base = f"http://localhost:{server.port}"
    context, page = open_context()
    _with_authenticator(context, page)
    _log_in(page, base, "alice")
    expect(page).to_have_url(f"{base}/account")

    page.fill("#passkey-name", "Laptop")
    page.fill("#passkey-password", PASSWORD)  # no second factor yet: the password proves it
    page.click("button:has-text('Add a passkey')")
    expect(page).to_have_url(f"{base}/account?n=passkey_added")
    expect(page.locator("#passkeys tbody tr")).to_have_count(1)
    expect(page.locator("#passkeys td.name")).to_have_text("Laptop")
    _shot(page, "passkey-registered")

    page.click("header button:has-text('Log out')")
    expect(page).to_have_url(f"{base}/login?n=logged_out")
    _log_in(page, base, "alice")
    expect(page).to_have_url(f"{base}/login/mfa")
    _shot(page, "passkey-login-challenge")
    page.click("#passkey-login")
    expect(page).to_have_url(f"{base}/account")
    expect(page.locator("#session-acr")).to_have_text("aal2")

    page.click("#passkey-step-up")
    expect(page).to_have_url(f"{base}/account?n=stepped_up")
    assert _notice(page) == "Thanks, you are confirmed for the next few minutes."
    _shot(page, "passkey-stepped-up")

    # An admin with a passkey changes things only after a recent aal2: the passkey's counts.
    page.goto(f"{base}/admin")
    page.fill("#new-username", "carol")
    page.fill("#new-password", "Quartz-Heron-Lantern-4817")
    page.click("button:has-text('Create user')")
    assert _notice(page) == "The user is created."
    expect(page.locator("#users tr[data-user='alice'] .passkeys summary")).to_have_text("1")
    _shot(page, "passkey-admin")

    page.goto(f"{base}/account")
    page.click("#passkeys button:has-text('Remove')")
    expect(page).to_have_url(f"{base}/account?n=passkey_removed")
    expect(page.locator("#passkeys")).to_have_count(0)
    _shot(page, "passkey-removed")
