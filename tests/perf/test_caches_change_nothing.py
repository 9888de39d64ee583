"""With every cache warm, nothing they hold outlives a revocation (issue 10, acceptance 7).

A gunicorn server with two workers answers; this test process is the other
instance that revokes. Each check is repeated on fresh connections so that
both workers (each with its own verified-token cache and revocation mirror)
answer it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from app.security import keyops
from app.security.revocation import revocations
from tests.conftest import TEST_KEK
from tests.support.http import call, login_token
from tests.support.servers import AppServer
from tests.support.tokens import PASSWORD, bearer, issue, make_user

ROUNDS = 8  # requests per check, over new connections: both workers answer some


@pytest.fixture(params=["redis", "database"])
def setup(request, make_app, database_url, tmp_path):  # type: ignore[no-untyped-def]
    settings = {"CLOCK_SKEW_LEEWAY": 0}
    env = {"TESSERA_DATABASE_URL": database_url, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
           "TESSERA_ISSUER": "http://localhost", "TESSERA_INSTANCE_PATH": str(tmp_path / "srv"),
           "TESSERA_CLOCK_SKEW_LEEWAY": "0"}
    if request.param == "redis":
        settings["REDIS_URL"] = request.getfixturevalue("redis_url")
        env["TESSERA_REDIS_URL"] = settings["REDIS_URL"]
    app = make_app(**settings)
    uid = make_user(app, "alice")
    make_user(app, "root", roles=("admin",))
    server = AppServer(env, workers=2, threads=2).start()
    yield app, uid, server
    server.stop()


def _statuses(server: AppServer, token: str) -> set[int]:
    return {call("GET", server.url + "/api/me", headers=bearer(token)).status
            for _ in range(ROUNDS)}


def _warm(server: AppServer, *tokens: str) -> None:
    for token in tokens:
        assert _statuses(server, token) == {200}


@pytest.mark.slow
def test_revoked_token_key_expired_and_disabled_user_with_warm_caches(setup) -> None:  # type: ignore[no-untyped-def]
    app, uid, server = setup
    revoked = issue(app, uid, jti="revoke-me", sid="s-1")
    survivor = issue(app, uid, jti="keep-me", sid="s-2")
    _warm(server, revoked, survivor)  # both workers are up and warm after this
    short_exp = int(time.time()) + 5  # long enough to warm, short enough to wait for
    short = issue(app, uid, jti="short", sid="s-3", exp=short_exp)
    _warm(server, short)

    with app.test_request_context():
        now = datetime.now(UTC)
        revocations().revoke_jti("revoke-me", now + timedelta(minutes=20), now)
    assert _statuses(server, revoked) == {401}
    assert _statuses(server, survivor) == {200}

    time.sleep(max(0.0, short_exp - time.time()) + 0.05)  # bounded: a few seconds
    assert _statuses(server, short) == {401}  # exp is checked on every use, cached or not

    with app.test_request_context():
        active = next(k.kid for k in keyops.list_signing_keys() if k.state == "active")
        keyops.revoke_signing_key(active)
    assert _statuses(server, survivor) == {401}  # its key is revoked: refused at once

    # Real sessions (revoke-all decides same-second tokens by their session), made
    # after the key revocation, so signed by the key that replaced it.
    fresh, admin = (login_token(server.url, name, PASSWORD) for name in ("alice", "root"))
    _warm(server, fresh, admin)
    disabled = call("PATCH", f"{server.url}/admin/api/users/{uid}", headers=bearer(admin),
                    json_body={"disabled": True})  # through the server: the real disable path
    assert disabled.status == 200, disabled.body
    assert _statuses(server, fresh) == {401}
    assert _statuses(server, admin) == {200}  # only the disabled user's tokens end
