"""Revocations honoured across processes and workers (issue 5, acceptance 5-6)."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_KEK
from tests.support.actions import AuthActions
from tests.support.http import Reply, call, login_token
from tests.support.servers import AppServer
from tests.support.tokens import PASSWORD, bearer, make_user


def _server(database_url: str, tmp_path, workers: int, redis_url: str | None = None) -> AppServer:  # type: ignore[no-untyped-def]
    env = {"TESSERA_DATABASE_URL": database_url, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
           "TESSERA_ISSUER": "http://localhost", "TESSERA_COOKIE_SECURE": "false",
           "TESSERA_INSTANCE_PATH": str(tmp_path / "srv")}
    if redis_url:
        env["TESSERA_REDIS_URL"] = redis_url
    return AppServer(env, workers=workers, threads=2).start()


def _login(server: AppServer) -> str:
    return login_token(server.url, "alice", PASSWORD)


def _me(server: AppServer, token: str) -> Reply:
    return call("GET", server.url + "/api/me", headers=bearer(token))


@pytest.mark.slow
def test_revocation_through_one_instance_is_honoured_by_the_other(
    make_app, database_url, redis_url, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    here = make_app(REDIS_URL=redis_url, COOKIE_SECURE=False)
    make_user(here, "alice")
    there = _server(database_url, tmp_path, workers=1, redis_url=redis_url)
    try:
        token = _login(there)
        assert _me(there, token).status == 200
        local = AuthActions(here.test_client())
        assert local.client.post("/auth/logout-all", headers=bearer(token)).status_code == 200
        assert _me(there, token).status == 401  # the very next request
    finally:
        there.stop()


@pytest.mark.slow
def test_embedded_default_two_workers_share_revocations(app, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_user(app, "alice")
    server = _server(database_url, tmp_path, workers=2)
    try:
        tokens = [_login(server) for _ in range(3)]
        assert call("POST", server.url + "/auth/logout", headers=bearer(tokens[0])).status == 200
        # New connections each time: both workers answer some of these.
        for _ in range(12):
            assert _me(server, tokens[0]).status == 401
            assert _me(server, tokens[1]).status == 200
        assert call("POST", server.url + "/auth/logout-all",
                    headers=bearer(tokens[1])).status == 200
        for _ in range(12):
            assert _me(server, tokens[2]).status == 401
    finally:
        server.stop()
