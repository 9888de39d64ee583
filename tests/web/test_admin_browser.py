"""The admin page's user lifecycle in a real browser (issue 19): create a user, reset MFA,
a temporary password that forces a change at the next login, paging users and the audit
log. Same harness as test_browser.py (gunicorn, Debian's chromium, CSP watched)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from app import state
from app.core.audit import AuditRecord, record
from app.core.clients import authenticate_client
from app.extensions import db
from app.models import LegacyUsage, ServiceClient
from tests.support.mfa import enroll_totp
from tests.support.tokens import PASSWORD, make_user
from tests.web import test_browser as harness
from tests.web.test_browser import SHOTS, _log_in, _notice, _shot

# The browser harness's fixtures, shared rather than copied.
browser, open_context, start_server = harness.browser, harness.open_context, harness.start_server

pytestmark = pytest.mark.slow
NEW_PASSWORD = "my very own pass phrase 7"


def _row(page: Page, username: str):  # type: ignore[no-untyped-def]
    return page.locator(f"#users tr[data-user='{username}']")


def _change_password(page: Page, base: str) -> None:
    expect(page).to_have_url(f"{base}/login/password")
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#new_password_again", NEW_PASSWORD + "x")
    page.click("button:has-text('Set password')")
    assert _notice(page) == "Enter the same new password twice."
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#new_password_again", NEW_PASSWORD)
    page.click("button:has-text('Set password')")
    expect(page).to_have_url(f"{base}/account?n=password_set")


def test_admin_creates_a_user_who_must_choose_a_password(app, start_server, open_context) -> None:  # type: ignore[no-untyped-def]
    make_user(app, "root", roles=("admin",))
    server = start_server()
    _, admin = open_context()
    _log_in(admin, server.url, "root")
    admin.goto(f"{server.url}/admin")
    admin.fill("#new-username", "carol")
    admin.fill("#new-password", "short")
    admin.click("button:has-text('Create user')")
    assert _notice(admin).startswith("password:")
    admin.fill("#new-username", "carol")
    admin.fill("#new-password", "Welcome-To-Tessera-1")
    admin.fill("#new-roles", "editor viewer")
    admin.click("button:has-text('Create user')")
    assert _notice(admin) == "The user is created."
    expect(_row(admin, "carol")).to_contain_text("password change due")
    expect(_row(admin, "carol").locator("input[name='roles']")).to_have_value("editor viewer")

    _, carol = open_context()
    _log_in(carol, server.url, "carol", "Welcome-To-Tessera-1")
    _shot(carol, "forced-password-change")
    carol.goto(f"{server.url}/account")  # no session yet
    expect(carol.locator("h1")).to_have_text("Log in")
    _log_in(carol, server.url, "carol", "Welcome-To-Tessera-1")
    _change_password(carol, server.url)
    expect(carol.locator("#username")).to_have_text("carol")


def test_reset_mfa_and_temporary_password(app, start_server, open_context) -> None:  # type: ignore[no-untyped-def]
    make_user(app, "root", roles=("admin",))
    make_user(app, "alice")
    enroll_totp(app, "alice")
    server = start_server()
    _, alice = open_context()
    _log_in(alice, server.url, "alice")
    expect(alice).to_have_url(f"{server.url}/login/mfa")  # MFA on: a code is asked

    _, admin = open_context()
    _log_in(admin, server.url, "root")
    admin.goto(f"{server.url}/admin")
    _row(admin, "alice").locator("button:has-text('Reset MFA')").click()
    assert _notice(admin) == "Two-step verification is reset; the user's sessions have ended."
    expect(_row(admin, "alice").locator("button:has-text('Reset MFA')")).to_have_count(0)
    _log_in(alice, server.url, "alice")
    expect(alice).to_have_url(f"{server.url}/account")  # no code asked any more

    _row(admin, "alice").locator("summary:has-text('Temporary password')").click()
    _row(admin, "alice").locator("button:has-text('Set temporary password')").click()
    temporary = admin.locator("#temporary-password").inner_text().strip()
    assert len(temporary) >= 12 and temporary not in admin.url  # rendered, never in a URL
    _shot(admin, "admin-temporary-password")
    admin.goto(f"{server.url}/admin")
    expect(admin.locator("#temporary-password")).to_have_count(0)  # shown once

    alice.goto(f"{server.url}/account")  # her session ended with the new password
    expect(alice).to_have_url(f"{server.url}/login?n=expired")
    _log_in(alice, server.url, "alice", PASSWORD)
    assert _notice(alice) == "Wrong username or password."
    _log_in(alice, server.url, "alice", temporary)
    _change_password(alice, server.url)
    alice.click("header button:has-text('Log out')")
    _log_in(alice, server.url, "alice", NEW_PASSWORD)
    expect(alice).to_have_url(f"{server.url}/account")


def test_admin_pages_through_users_and_the_audit_log(app, start_server, open_context) -> None:  # type: ignore[no-untyped-def]
    make_user(app, "root", roles=("admin",))
    for i in range(54):
        make_user(app, f"user{i:02d}")
    with app.app_context():  # more than one page of audit rows
        for i in range(55):
            record(db.session(), AuditRecord("LOGIN_FAILURE", user_id=i + 2, result="failure"),
                   state.now())
        db.session.commit()
    server = start_server()
    _, admin = open_context()
    _log_in(admin, server.url, "root")
    admin.goto(f"{server.url}/admin")
    first = admin.locator("#users tbody tr").evaluate_all("rows => rows.map(r => r.dataset.user)")
    assert len(first) == 50 and first[0] == "root"
    _shot(admin, "admin-users-page-1")
    admin.click("#users-next")
    admin.wait_for_url("**after_id=*")
    second = admin.locator("#users tbody tr").evaluate_all("rows => rows.map(r => r.dataset.user)")
    assert second == [f"user{i:02d}" for i in range(49, 54)]
    expect(admin.locator("#users-next")).to_have_count(0)
    admin.click("#users-first")
    admin.wait_for_url(f"{server.url}/admin")
    assert admin.locator("#users tbody tr").first.get_attribute("data-user") == "root"

    admin.fill("#q", "user5")
    admin.click("button:has-text('Search')")
    admin.wait_for_url("**q=user5*")
    found = admin.locator("#users tbody tr").evaluate_all("rows => rows.map(r => r.dataset.user)")
    assert found == ["user50", "user51", "user52", "user53"]

    ids = admin.locator("#audit tbody tr").evaluate_all("rows => rows.map(r => +r.dataset.id)")
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    admin.click("#audit-older")
    admin.wait_for_url("**before_id=*")
    older = admin.locator("#audit tbody tr").evaluate_all("rows => rows.map(r => +r.dataset.id)")
    assert older and max(older) < min(ids)  # each row once, in order
    expect(admin.locator("#audit-newest")).to_have_count(1)


def test_admin_registers_a_client_and_rotates_its_secret(app, start_server, open_context) -> None:  # type: ignore[no-untyped-def]
    make_user(app, "root", roles=("admin",))
    server = start_server()
    _, admin = open_context()
    _log_in(admin, server.url, "root")
    admin.goto(f"{server.url}/admin")
    admin.fill("#client-name", "notes service")
    admin.click("button:has-text('Register client')")
    assert _notice(admin) == "The client is registered."
    first = admin.locator("#client-secret").inner_text().strip()
    client_id = admin.locator("#clients tbody tr").first.get_attribute("data-client")
    row = admin.locator(f"#clients tr[data-client='{client_id}']")
    row.locator("button:has-text('Rotate secret')").click()
    assert _notice(admin) == "The client's secret is rotated."
    second = admin.locator("#client-secret").inner_text().strip()
    assert second != first
    expect(row.locator(".previous-secret")).to_contain_text("old secret valid until")
    _shot(admin, "admin-client-rotated")
    with app.app_context():  # both secrets open the door during the overlap
        stored = db.session.get(ServiceClient, client_id)
        assert authenticate_client(stored, first, state.now())
        assert authenticate_client(stored, second, state.now())
    row.locator("input[name='scope_revoke']").uncheck()
    row.locator("button:has-text('Set scopes')").click()
    assert _notice(admin) == "The client's scopes are set."
    expect(admin.locator(f"#clients tr[data-client='{client_id}'] input[name='scope_revoke']")
           ).not_to_be_checked()
    admin.locator(f"#clients tr[data-client='{client_id}'] button:has-text('Delete')").click()
    assert _notice(admin) == "The client is deleted; its secrets no longer work."
    expect(admin.locator("#clients tbody tr[data-client]")).to_have_count(0)


def test_migration_chart_screenshot(app, start_server, open_context) -> None:  # type: ignore[no-untyped-def]
    """Legacy use falling towards the sunset, as an operator sees it (no console error,
    no CSP violation: the chart is inline SVG without script or style attributes)."""
    make_user(app, "root", roles=("admin",))
    with app.app_context():
        now = state.now()
        for back in range(21):
            day = now - timedelta(days=back)
            db.session.add(LegacyUsage(day=day.date(), count=(back + 1) * 40,
                                       last_seen_at=day))
            for _ in range(60 - back * 2):
                record(db.session(), AuditRecord("TOKEN_ISSUED", user_id=1), day)
            for _ in range(back % 4):
                record(db.session(), AuditRecord("LEGACY_TOKEN_EXCHANGED", user_id=1), day)
        db.session.commit()
    sunset = (datetime.now(UTC) + timedelta(days=8)).replace(microsecond=0).isoformat()
    server = start_server(LEGACY_HS256_SECRETS='["old-shared-secret-0123456789-abcdef"]',
                          MIGRATION_PHASE="dual", LEGACY_ACCEPT_UNTIL=sunset)
    _, admin = open_context()
    _log_in(admin, server.url, "root")
    admin.goto(f"{server.url}/admin")
    chart = admin.locator("#migration-chart")
    expect(chart.locator("polyline")).to_have_count(3)
    expect(chart.locator("#chart-sunset")).to_have_count(1)
    SHOTS.mkdir(parents=True, exist_ok=True)
    chart.screenshot(path=str(SHOTS / "admin-migration-chart.png"))
    _shot(admin, "admin-with-migration-chart")
