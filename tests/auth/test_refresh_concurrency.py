"""N clients refreshing with one token at once, against a real gunicorn process (issue 4)."""

from __future__ import annotations

import threading
from http.cookies import SimpleCookie

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import RefreshToken
from tests.conftest import TEST_KEK
from tests.support.http import Reply, call
from tests.support.servers import AppServer
from tests.support.tokens import PASSWORD, make_user

THREADS = 8


@pytest.fixture
def server(app, database_url, tmp_path):  # type: ignore[no-untyped-def]
    make_user(app, "alice")
    process = AppServer({
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_ISSUER": "http://localhost",
        "TESSERA_COOKIE_SECURE": "false",
        "TESSERA_INSTANCE_PATH": str(tmp_path / "srv"),
    }, workers=2, threads=4)
    process.start()
    yield process
    process.stop()


def _cookies(reply: Reply) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for value in reply.set_cookies:
        jar.load(value)
    return {key: morsel.value for key, morsel in jar.items()}


def _refresh(server: AppServer, refresh: str, csrf: str) -> Reply:
    return call("POST", server.url + "/auth/refresh", headers={
        "Cookie": f"refresh_token={refresh}; csrf_token={csrf}", "X-CSRF-Token": csrf})


@pytest.mark.slow
def test_one_token_many_refreshes_mint_at_most_one(app, server) -> None:  # type: ignore[no-untyped-def]
    login = call("POST", server.url + "/auth/login",
                 json_body={"username": "alice", "password": PASSWORD})
    assert login.status == 200
    cookies = _cookies(login)
    refresh, csrf = cookies["refresh_token"], cookies["csrf_token"]

    replies: list[Reply] = []
    barrier = threading.Barrier(THREADS)

    def go() -> None:
        barrier.wait(timeout=10)
        replies.append(_refresh(server, refresh, csrf))

    threads = [threading.Thread(target=go) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(replies) == THREADS
    assert all(r.status == 200 for r in replies), [r.body for r in replies]
    handed_out = {_cookies(r)["refresh_token"] for r in replies}
    assert len(handed_out) == 1  # everyone holds the one new token
    with app.app_context():
        minted = db.session.scalar(select(func.count()).select_from(RefreshToken))
    assert minted == 2  # the login's token and exactly one successor
    (current,) = handed_out
    assert _refresh(server, current, csrf).status == 200  # the session stays usable
