"""The web pages in a real browser: Debian's headless chromium driven by Playwright (issue 9).

Every page a test opens is watched for console errors, page errors and CSP
violations; a test fails if any shows up. Screenshots of the pages go to
``artifacts/web/`` (not committed) for a person to look at.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from tests.conftest import TEST_KEK
from tests.support.servers import AppServer
from tests.support.tokens import PASSWORD, make_user

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"
# Reported by the page itself: CSP violations reach the console this way too.
_WATCH_CSP = """document.addEventListener("securitypolicyviolation", (e) =>
  console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI));"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the test command installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def start_server(app, database_url, tmp_path) -> Iterator[Callable[..., AppServer]]:  # type: ignore[no-untyped-def]
    """Tessera under gunicorn on the test's database (``app`` made its keys)."""
    servers: list[AppServer] = []

    def start(**settings: str) -> AppServer:
        env = {"TESSERA_DATABASE_URL": database_url, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
               "TESSERA_ISSUER": "http://localhost", "TESSERA_COOKIE_SECURE": "false",
               "TESSERA_INSTANCE_PATH": str(tmp_path / "srv"),
               **{f"TESSERA_{name}": value for name, value in settings.items()}}
        servers.append(AppServer(env, workers=1, threads=4).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def open_context(browser: Browser) -> Iterator[Callable[[], tuple[BrowserContext, Page]]]:
    """New browser contexts (separate cookie jars) whose pages must stay free of errors."""
    problems: list[str] = []
    contexts: list[BrowserContext] = []

    def open_() -> tuple[BrowserContext, Page]:
        context = browser.new_context()
        context.add_init_script(_WATCH_CSP)
        page = context.new_page()
        page.on("console", lambda msg: _console(page, msg, problems))
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        contexts.append(context)
        return context, page

    yield open_
    for context in contexts:
        context.close()
    assert problems == [], problems


def _console(page: Page, msg: ConsoleMessage, problems: list[str]) -> None:
    """Keep every console error except Chromium's note on the document's own HTTP status.

    A failure page answers with its true status (401 for a wrong password, 429
    with Retry-After), which Chromium echoes as "Failed to load resource" for
    the page itself; the tests assert those statuses. The same note for any
    other URL (a stylesheet, an icon) is a broken page and counts.
    """
    if msg.type != "error":
        return
    own_status = (msg.text.startswith("Failed to load resource: the server responded")
                  and msg.location.get("url") == page.url)
    if not own_status:
        problems.append(f"{msg.text} ({msg.location.get('url')})")


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _log_in(page: Page, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button:has-text('Log in')")


def _notice(page: Page) -> str:
    return page.locator(".notice").inner_text()


def test_mfa_enrolment_challenge_and_ending_another_session(  # type: ignore[no-untyped-def]
        app, start_server, open_context) -> None:
    make_user(app, "alice")
    server = start_server()
    _, page = open_context()
    _log_in(page, server.url, "alice")
    expect(page).to_have_url(f"{server.url}/account")
    expect(page.locator("#username")).to_have_text("alice")
    _shot(page, "account")

    page.click("button:has-text('Set up an authenticator app')")
    secret = page.locator("#totp-secret").inner_text().strip()
    expect(page.locator(".qr img")).to_be_visible()
    _shot(page, "mfa-enrolment")
    totp = pyotp.TOTP(secret)
    page.fill("#confirm-code", totp.now())
    page.fill("#confirm-password", PASSWORD)  # turning MFA on proves the password (issue 16)
    page.click("button:has-text('Turn on')")
    # Wait for the answer (now with an argon2 check): all_inner_texts does not wait.
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    codes = page.locator("#recovery-codes li").all_inner_texts()
    _shot(page, "recovery-codes")

    page.click("header button:has-text('Log out')")
    expect(page).to_have_url(f"{server.url}/login?n=logged_out")
    assert _notice(page) == "You are logged out."

    _log_in(page, server.url, "alice")
    expect(page).to_have_url(f"{server.url}/login/mfa")
    _shot(page, "mfa-challenge")
    # The confirming code's time step is spent (replay protection): use the next one.
    page.fill("#code", totp.at(time.time() + 30))
    page.click("button:has-text('Continue')")
    expect(page).to_have_url(f"{server.url}/account")
    expect(page.locator("#mfa-state")).to_have_text("on")

    _, other = open_context()
    _log_in(other, server.url, "alice")
    other.fill("#code", codes[0])  # a recovery code, once
    other.click("button:has-text('Continue')")
    expect(other).to_have_url(f"{server.url}/account")

    page.reload()
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(2)
    rows.filter(has_not_text="this session").locator("button:has-text('End')").click()
    assert _notice(page) == "The session has ended."
    expect(page.locator("#sessions tbody tr")).to_have_count(1)

    other.goto(f"{server.url}/account")
    expect(other).to_have_url(f"{server.url}/login?n=expired")
    expect(other.locator("h1")).to_have_text("Log in")


def test_admin_revokes_a_user_and_rotates_keys(app, start_server, open_context) -> None:  # type: ignore[no-untyped-def]
    make_user(app, "root", roles=("admin",))
    make_user(app, "bob")
    server = start_server()
    _, bob = open_context()
    _log_in(bob, server.url, "bob")
    expect(bob).to_have_url(f"{server.url}/account")

    _, admin = open_context()
    _log_in(admin, server.url, "root")
    admin.goto(f"{server.url}/admin")
    expect(admin.locator("#users tr[data-user='bob'] td").nth(3)).to_contain_text("1")
    _shot(admin, "admin")
    admin.locator("#users tr[data-user='bob'] button:has-text('Revoke all tokens')").click()
    assert _notice(admin) == "Every token and session of that user has ended."

    bob.goto(f"{server.url}/account")
    expect(bob).to_have_url(f"{server.url}/login?n=expired")

    before = admin.locator("#active-kid").inner_text()
    standby = admin.locator("#keys tr[data-state='standby']").get_attribute("data-kid")
    admin.check("input[name='force']")
    admin.click("button:has-text('Rotate keys')")
    assert _notice(admin) == "The keys are rotated."
    after = admin.locator("#active-kid").inner_text()
    assert after != before and after == standby
    expect(admin.locator(f"#keys tr[data-kid='{before}']")).to_have_attribute("data-state",
                                                                               "retired")


def test_session_cookies_are_out_of_the_page_s_reach(app, start_server, open_context) -> None:  # type: ignore[no-untyped-def]
    make_user(app, "alice")
    server = start_server()
    context, page = open_context()
    _log_in(page, server.url, "alice")
    expect(page).to_have_url(f"{server.url}/account")
    jar = {cookie["name"]: cookie for cookie in context.cookies()}
    for name in ("access_token", "refresh_token"):
        assert jar[name]["httpOnly"] is True and jar[name]["sameSite"] == "Strict", jar[name]
    assert jar["refresh_token"]["path"] == "/auth"
    readable = page.evaluate("document.cookie")
    assert "csrf_token=" in readable  # readable on purpose (double submit)
    assert "access_token" not in readable and "refresh_token" not in readable


def test_expired_access_token_is_renewed_silently_and_reuse_is_explained(
    app, start_server, open_context
) -> None:  # type: ignore[no-untyped-def]
    make_user(app, "alice")
    server = start_server(ACCESS_TOKEN_TTL="2", CLOCK_SKEW_LEEWAY="0", REFRESH_REUSE_GRACE="0")
    context, page = open_context()
    _log_in(page, server.url, "alice")
    expect(page).to_have_url(f"{server.url}/account")
    first_refresh = _cookie(context, "refresh_token")

    time.sleep(2.5)  # the access token (and its cookie) has expired; the session lives on
    page.goto(f"{server.url}/account")
    expect(page).to_have_url(f"{server.url}/account")
    assert _cookie(context, "refresh_token")["value"] != first_refresh["value"]

    context.add_cookies([first_refresh])  # an old refresh token comes back: reuse
    page.goto(f"{server.url}/auth/resume?next=/account")
    expect(page).to_have_url(f"{server.url}/login?n=reuse")
    assert "used again" in _notice(page)


def test_failures_read_as_sentences(app, start_server, open_context) -> None:  # type: ignore[no-untyped-def]
    make_user(app, "alice")
    server = start_server(RATELIMIT_LOGIN_PER_IP="2/minute")
    _, page = open_context()
    for _ in range(2):
        _log_in(page, server.url, "alice", "not the password at all")
        assert _notice(page) == "Wrong username or password."
    _log_in(page, server.url, "alice", "not the password at all")
    assert _notice(page).startswith("Too many attempts")
    _shot(page, "rate-limited")
    assert page.locator("#username").is_visible()  # a page, not a JSON error
    page.goto(f"{server.url}/login/mfa")  # no challenge pending
    expect(page).to_have_url(f"{server.url}/login?n=mfa_expired")
    assert _notice(page) == "This login attempt has ended; please log in again."


def _cookie(context: BrowserContext, name: str) -> Any:
    return next(cookie for cookie in context.cookies() if cookie["name"] == name)
