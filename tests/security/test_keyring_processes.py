"""Two app instances on one database: rotations and revocations cross processes (issue 3)."""

from __future__ import annotations

import base64
import json

import pytest

from app.security import keyops
from tests.conftest import TEST_KEK
from tests.support.http import call
from tests.support.servers import AppServer, wait_until
from tests.support.tokens import bearer, issue, make_user


@pytest.fixture
def other_instance(app, database_url, tmp_path):  # type: ignore[no-untyped-def]
    """Tessera under gunicorn, in its own process, on the test's database."""
    server = AppServer({
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_ISSUER": "http://localhost",
        "TESSERA_INSTANCE_PATH": str(tmp_path / "other"),
        "TESSERA_KEYRING_REFRESH": "1",
    })
    server.start()
    yield server
    server.stop()


def _kid(token: str) -> str:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]


def _me(server: AppServer, token: str) -> int:
    return call("GET", server.url + "/api/me", headers=bearer(token)).status


@pytest.mark.slow
def test_rotation_and_revocation_reach_the_other_process(app, other_instance) -> None:  # type: ignore[no-untyped-def]
    uid = make_user(app)
    old = issue(app, uid)
    assert _me(other_instance, old) == 200  # the other process has loaded the keyring

    with app.app_context():
        rotated = keyops.rotate_signing_keys(force=True)
    new = issue(app, uid)
    assert _kid(new) == rotated.active_kid
    # The new kid is unknown to the other process's snapshot, so it reloads at once.
    assert _me(other_instance, new) == 200
    assert _me(other_instance, old) == 200  # retired keys keep verifying

    with app.app_context():
        keyops.revoke_signing_key(rotated.active_kid)
    # The revoked key's tokens are refused on the next request (the revocation store
    # carries the kid), and within KEYRING_REFRESH (1 s here) it leaves the JWKS.
    assert _me(other_instance, new) == 401

    def unpublished() -> bool:
        jwks = call("GET", other_instance.url + "/.well-known/jwks.json").json()
        return rotated.active_kid not in {key["kid"] for key in jwks["keys"]}

    wait_until(unpublished, timeout=5)
