"""Session device names (issue 19): readable, from ua-parser, never from a hand-kept list."""

from __future__ import annotations

import pytest

from app.core.devices import device_name
from tests.support.actions import AuthActions
from tests.support.tokens import PASSWORD, bearer, make_user


@pytest.mark.parametrize(("user_agent", "name"), [
    (("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36"), "Chrome on Linux"),
    (("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"), "Safari on iPhone"),
    (("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Mobile/15E148 Safari/604.1"), "Safari on iPad"),
    (("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.4 Safari/605.1.15"), "Safari on macOS"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "Firefox on Windows"),
    (("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Mobile Safari/537.36"), "Chrome on Pixel 8"),
    ("curl/8.5.0", "curl"),
    ("", "Unknown device"),
    (None, "Unknown device"),
])
def test_device_names(user_agent: str | None, name: str) -> None:
    assert device_name(user_agent) == name


def test_huge_or_odd_headers_still_get_a_name() -> None:
    assert device_name("x" * 100_000)  # capped before the regexes see it
    assert device_name("\x00\xff Mozilla")


IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


def test_sessions_are_named_by_device_and_admins_keep_the_raw_string(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False)
    make_user(app, "root", roles=("admin",))
    make_user(app, "alice")
    alice = AuthActions(app.test_client())
    token = alice.client.post("/auth/login", json={"username": "alice", "password": PASSWORD},
                              headers={"User-Agent": IPHONE}).get_json()["access_token"]
    own = alice.client.get("/auth/sessions", headers=bearer(token)).get_json()["sessions"][0]
    assert own["device"] == "Safari on iPhone" and own["user_agent"] == IPHONE
    assert "Safari on iPhone" in alice.client.get("/account").get_data(as_text=True)
    admin = AuthActions(app.test_client()).login(username="root").get_json()["access_token"]
    listed = app.test_client().get("/admin/api/users/2/sessions",
                                   headers=bearer(admin)).get_json()["sessions"][0]
    assert listed["device"] == "Safari on iPhone" and listed["user_agent"] == IPHONE
    root = AuthActions(app.test_client())
    root.login(username="root")
    page = root.client.get("/admin").get_data(as_text=True)
    assert f'title="{IPHONE}"' in page and ">Safari on iPhone<" in page
