"""The HS256 → asymmetric migration rehearsed end to end (issue 17, acceptance 2 and 3).

Cast: the old system (an HS256 issuer: PyJWT with the shared secret), Tessera
live under gunicorn, and a resource server in a thread on 127.0.0.1 that uses
the ``tessera_verifier`` package and knows nothing but Tessera's URL and the old
secret. Tessera goes ``legacy`` → ``dual`` → (sunset, a few seconds ahead) →
``asymmetric``; clients exchange their old token, log in again, or keep their
old token. Nobody is refused before the sunset; after it every HS256 token is
refused by Tessera and by the resource server, which learnt it from Tessera's
metadata without a restart. Then a key revoked on Tessera, and a token logged
out while a revocation-sensitive route asks Tessera (introspection).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import TEST_KEK
from tests.support.http import call
from tests.support.servers import AppServer, wait_until
from tests.support.tokens import PASSWORD, bearer, make_user

tessera_verifier = pytest.importorskip("tessera_verifier.flask")  # installed by scripts/test.sh

# After the skip above: the package is installed by scripts/test.sh.
from tessera_verifier.flask import TesseraAuth, current_token  # noqa: E402
from tessera_verifier.introspection import Introspector  # noqa: E402
from tessera_verifier.verifier import Verifier  # noqa: E402

SECRET = "old-shared-secret-0123456789-abcdef"
# Seconds after Tessera is started: room for the legacy and dual acts on a loaded machine
# (22 once ran out under a parallel test run: the dual act then met the sunset).
SUNSET_IN = 30
REFRESH = 1  # KEYRING_REFRESH, JWKS_MAX_AGE, METADATA_MAX_AGE and the verifier's refresh


class ResourceServer:
    """A notes service protected by the verifier package, on 127.0.0.1 in a thread."""

    def __init__(self, tessera_url: str, client_id: str, client_secret: str) -> None:
        metadata_url = tessera_url + "/.well-known/oauth-authorization-server"
        self.verifier = Verifier(tessera_url, tessera_url + "/api", metadata_url=metadata_url,
                                 legacy_secrets=[SECRET], refresh_seconds=REFRESH)
        introspector = Introspector(tessera_url + "/oauth/introspect", client_id, client_secret,
                                    cache_seconds=0.5)
        app = Flask("notes-service")
        self.auth = auth = TesseraAuth(app, verifier=self.verifier, introspector=introspector)

        @app.get("/notes")
        @auth.require()  # old-system tokens carry no scope: the route asks for none
        def notes() -> dict[str, Any]:
            return {"sub": current_token().subject, "alg": current_token().alg}

        @app.post("/transfer")
        @auth.require(revocation_sensitive=True)
        def transfer() -> dict[str, Any]:
            return {"ok": True}

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def get(self, token: str) -> int:
        return call("GET", self.url + "/notes", headers=bearer(token)).status

    def stop(self) -> None:
        self.server.shutdown()
        self.verifier.close()


def old_system_token(sub: str, lifetime: int) -> str:
    """What the old system hands out: HS256, the shared secret, few claims."""
    return jwt.encode({"sub": sub, "exp": int(time.time()) + lifetime}, SECRET, algorithm="HS256")


def _login(url: str, username: str) -> str:
    reply = call("POST", url + "/auth/login",
                 json_body={"username": username, "password": PASSWORD})
    assert reply.status == 200, reply.body
    return str(reply.json()["access_token"])


def pyjwt_recipe(url: str, raw: str) -> dict[str, Any]:
    """The README's plain-PyJWT recipe, word for word but for the URLs."""
    if jwt.get_unverified_header(raw).get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):  # noqa: E501 - the README's line
        raise jwt.InvalidTokenError("not an access token")
    key = jwt.PyJWKClient(url + "/.well-known/jwks.json", cache_jwk_set=True,
                          lifespan=300).get_signing_key_from_jwt(raw)
    return jwt.decode(raw, key.key, algorithms=["ES256"], issuer=url, audience=url + "/api",
                      leeway=30, options={"require": ["exp", "iat", "nbf", "sub", "jti"]})


def _alg(token: str) -> str:
    return str(jwt.get_unverified_header(token)["alg"])


@pytest.fixture
def cast(make_app, database_url, tmp_path) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    sunset = datetime.fromtimestamp(time.time() + SUNSET_IN, UTC)
    settings = {"LEGACY_HS256_SECRETS": [SECRET], "MIGRATION_PHASE": "legacy",
                "LEGACY_ACCEPT_UNTIL": sunset.isoformat(), "KEYRING_REFRESH": REFRESH}
    cli_app = make_app(**settings)  # the operator's `flask ...` on the same database
    for name in ("alice", "bob", "carol", "dave"):
        make_user(cli_app, name)
    make_user(cli_app, "root", roles=("admin",))
    created = cli_app.test_cli_runner().invoke(args=["clients", "create", "notes service"])
    client_id = re.search(r"client_id:\s+(\S+)", created.output).group(1)  # type: ignore[union-attr]
    secret = re.search(r"client_secret:\s+(\S+)", created.output).group(1)  # type: ignore[union-attr]
    server = AppServer({
        "TESSERA_DATABASE_URL": database_url, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_COOKIE_SECURE": "false", "TESSERA_INSTANCE_PATH": str(tmp_path / "srv"),
        "TESSERA_LEGACY_HS256_SECRETS": json.dumps([SECRET]), "TESSERA_MIGRATION_PHASE": "legacy",
        "TESSERA_LEGACY_ACCEPT_UNTIL": sunset.isoformat(),
        "TESSERA_KEYRING_REFRESH": str(REFRESH), "TESSERA_KEYRING_RELOAD_COOLDOWN": "0",
        "TESSERA_JWKS_MAX_AGE": str(REFRESH), "TESSERA_METADATA_MAX_AGE": str(REFRESH),
    }, workers=2, threads=4)
    server.env["TESSERA_ISSUER"] = server.url  # the resource server reaches it there
    server.start()
    resource = ResourceServer(server.url, client_id, secret)
    try:
        yield {"tessera": server, "rs": resource, "cli": cli_app, "sunset": sunset.timestamp()}
    finally:
        resource.stop()
        server.stop()


def _cli(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _legacy_seen(app: Flask) -> int:
    """Legacy tokens Tessera accepted today, from `flask migration status`."""
    output = _cli(app, "migration", "status")
    return sum(int(n) for n in re.findall(r"^\S+\s+(\d+)\s+last", output, re.MULTILINE))


@pytest.mark.slow
def test_migration_rehearsal(cast) -> None:  # type: ignore[no-untyped-def]
    tessera, rs, cli_app = cast["tessera"], cast["rs"], cast["cli"]
    url = tessera.url

    def tessera_me(token: str) -> int:
        return call("GET", url + "/api/me", headers=bearer(token)).status

    # --- act 1: legacy. The old system's tokens and Tessera's own HS256 tokens pass everywhere.
    old = {name: old_system_token(str(n), 600)
           for n, name in enumerate(("alice", "bob", "carol"), 1)}
    short = old_system_token("4", 6)  # dave's: expires before the sunset
    tessera_hs = _login(url, "dave")
    assert _alg(tessera_hs) == "HS256"  # phase legacy: Tessera signs like the old system
    for token in (*old.values(), short, tessera_hs):
        assert tessera_me(token) == 200 and rs.get(token) == 200
    assert rs.verifier.migration().phase == "legacy"

    # --- act 2: dual, switched once on Tessera; the resource server follows by itself.
    _cli(cli_app, "migration", "set", "dual")
    wait_until(lambda: rs.verifier.migration().phase == "dual", timeout=4 * REFRESH + 3)
    exchanged = call("POST", url + "/auth/token/exchange", headers=bearer(old["alice"]))
    assert exchanged.status == 200, exchanged.body
    alice_new = exchanged.json()["access_token"]
    bob_new = _login(url, "bob")  # bob logs in again
    assert _alg(alice_new) == _alg(bob_new) == "ES256"
    assert tessera_me(old["alice"]) == 401  # the exchange revoked it on Tessera
    assert pyjwt_recipe(url, bob_new)["sub"] == "2"  # the plain recipe takes the new tokens
    with pytest.raises(jwt.PyJWTError):  # ...and no legacy token: no dual mode there
        pyjwt_recipe(url, old["carol"])
    keepers = {"carol (old token)": old["carol"], "dave (Tessera HS256)": tessera_hs,
               "alice (exchanged)": alice_new, "bob (new login)": bob_new}

    # Until the sunset, nobody is refused (dave's short token until its own expiry).
    assert time.time() < cast["sunset"] - 3, "the acts before the sunset outran SUNSET_IN"
    refused: list[str] = []
    while time.time() < cast["sunset"] - 1.5:
        for name, token in keepers.items():
            if tessera_me(token) != 200 or rs.get(token) != 200:
                refused.append(name)
        short_exp = jwt.decode(short, options={"verify_signature": False})["exp"]
        short_alive = time.time() < short_exp - 1
        if short_alive and (tessera_me(short) != 200 or rs.get(short) != 200):
            refused.append("dave (short old token)")
        time.sleep(0.3)
    assert refused == []
    used_before_sunset = _legacy_seen(cli_app)
    assert used_before_sunset > 0

    # --- act 3: the sunset. No restart, no redeploy: every HS256 token is refused.
    time.sleep(max(0.0, cast["sunset"] - time.time()) + 1.0)
    fresh_old = old_system_token("3", 600)  # the old system still issuing: refused too
    for token in (old["carol"], old["bob"], tessera_hs, fresh_old):
        assert tessera_me(token) == 401 and rs.get(token) == 401
    assert rs.auth.rejections["legacy_disabled"] >= 4
    for token in (alice_new, bob_new):
        assert tessera_me(token) == 200 and rs.get(token) == 200
    assert "HS256 refused" in _cli(cli_app, "migration", "status")
    assert _legacy_seen(cli_app) == used_before_sunset  # no legacy use since the sunset
    _cli(cli_app, "migration", "set", "asymmetric")
    wait_until(lambda: rs.verifier.migration().phase == "asymmetric", timeout=4 * REFRESH + 3)
    admin = _login(url, "root")

    def admin_status() -> Any:
        return call("GET", url + "/admin/api/migration", headers=bearer(admin)).json()

    # Each of Tessera's workers learns the phase at its next keyring reload: the resource
    # server may have heard it from one worker before this request reaches the other.
    wait_until(lambda: admin_status()["phase"] == "asymmetric", timeout=4 * REFRESH + 3)
    status = admin_status()
    assert status["phase"] == "asymmetric" and status["legacy_accepted"] is False
    assert sum(day["count"] for day in status["legacy_usage"]) == used_before_sunset
    last_seen = datetime.strptime(status["last_legacy_token_at"], "%a, %d %b %Y %H:%M:%S %Z")
    assert last_seen.replace(tzinfo=UTC).timestamp() < cast["sunset"] + 1  # none since
    page = call("GET", url + "/admin", headers={"Cookie": f"access_token={admin}"})
    assert page.status == 200, page.body[:300]
    html = page.body.decode()
    assert '<strong id="phase">asymmetric</strong>' in html and "HS256 tokens\n    refused" in html
    assert f"<td>{used_before_sunset}</td>" in html  # the day's count stopped at the sunset

    # --- acceptance 3a: a key revoked on Tessera stops verifying within the refresh bound.
    kid = jwt.get_unverified_header(bob_new)["kid"]
    _cli(cli_app, "keys", "revoke", "--", kid)  # a kid may begin with "-"
    revoked_at = time.monotonic()
    wait_until(lambda: rs.get(bob_new) == 401, timeout=10)
    took = time.monotonic() - revoked_at
    print(f"revoked key refused by the resource server after {took:.2f} s")
    # Tessera reloads within KEYRING_REFRESH, the JWKS may be cached JWKS_MAX_AGE, the
    # verifier refreshes at 80 % of that: 2 × REFRESH, plus the polling and a loaded machine.
    assert took <= 2 * REFRESH + 2, took
    assert tessera_me(bob_new) == 401

    # --- acceptance 3b: a revocation-sensitive route sees a log-out at once.
    carol = _login(url, "carol")
    assert call("POST", rs.url + "/transfer", headers=bearer(carol)).status == 200
    assert call("POST", url + "/auth/logout", headers=bearer(carol)).status == 200
    time.sleep(0.6)  # past the resource server's 0.5 s introspection cache
    assert call("POST", rs.url + "/transfer", headers=bearer(carol)).status == 401
    assert rs.get(carol) == 200  # offline verification cannot know: hence the marking
