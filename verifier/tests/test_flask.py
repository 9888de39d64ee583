"""The Flask extension: scopes, roles, acr and max age, challenges, Tessera's error shape."""

from __future__ import annotations

import time

import pytest

flask = pytest.importorskip("flask")

# After the skip: the extension imports Flask, an optional dependency of the package.
from issuer import hs256  # noqa: E402
from tessera_verifier.flask import TesseraAuth, current_token  # noqa: E402
from tessera_verifier.introspection import Introspector  # noqa: E402
from tessera_verifier.verifier import Verifier  # noqa: E402


@pytest.fixture
def client(tessera):  # type: ignore[no-untyped-def]
    app = flask.Flask(__name__)
    verifier = Verifier(tessera.url, tessera.audience, metadata_url=tessera.metadata_url,
                        background=False)
    auth = TesseraAuth(app, verifier=verifier, realm="notes",
                       introspector=Introspector(tessera.url + "/introspect", "svc", "secret",
                                                 cache_seconds=0.2))

    @app.get("/notes")
    @auth.require("notes:read")
    def notes():  # type: ignore[no-untyped-def]
        return {"sub": current_token().subject}

    @app.get("/admin")
    @auth.require(roles=("admin",))
    def admin():  # type: ignore[no-untyped-def]
        return {"ok": True}

    @app.post("/payout")
    @auth.require(acr="aal2", max_age=300)
    def payout():  # type: ignore[no-untyped-def]
        return {"ok": True}

    @app.get("/sensitive")
    @auth.require(revocation_sensitive=True)
    def sensitive():  # type: ignore[no-untyped-def]
        return {"ok": True}

    test_client = app.test_client()
    test_client.auth = auth
    return test_client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Request-ID": "rid-1"}


def _error(response):  # type: ignore[no-untyped-def]
    body = response.get_json()
    assert set(body) == {"error", "message", "details", "request_id"}  # Tessera's shape
    assert body["request_id"] == "rid-1" or response.request.headers.get("X-Request-ID") is None
    return body, response.headers.get("WWW-Authenticate", "")


def test_valid_token_passes(client, tessera) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/notes", headers=_bearer(tessera.token()))
    assert response.status_code == 200 and response.get_json() == {"sub": "7"}


def test_missing_and_invalid_tokens(client, tessera) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/notes")
    body, challenge = _error(response)
    assert response.status_code == 401 and body["error"] == "invalid_token"
    assert challenge == 'Bearer realm="notes"'  # RFC 6750 §3.1: no error code without a token
    response = client.get("/notes", headers=_bearer(tessera.token(aud="http://other")))
    body, challenge = _error(response)
    assert response.status_code == 401
    assert challenge == 'Bearer realm="notes", error="invalid_token"'
    assert "bad_audience" not in response.get_data(as_text=True)  # reason kept internal
    assert client.auth.rejections["bad_audience"] == 1
    response = client.get("/notes", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401 and client.auth.rejections["malformed_header"] == 1


def test_scope_and_role(client, tessera) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/notes", headers=_bearer(tessera.token(scope="other")))
    body, challenge = _error(response)
    assert response.status_code == 403 and body["error"] == "insufficient_scope"
    assert body["details"] == {"scope": "notes:read"}
    assert 'error="insufficient_scope", scope="notes:read"' in challenge
    response = client.get("/admin", headers=_bearer(tessera.token()))
    assert response.status_code == 403 and response.get_json()["error"] == "forbidden"
    assert client.get("/admin", headers=_bearer(tessera.token(roles=["admin"]))).status_code == 200


def test_step_up_challenges_rfc9470(client, tessera) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/payout", headers=_bearer(tessera.token(acr="aal1")))
    body, challenge = _error(response)
    assert response.status_code == 401 and body["error"] == "insufficient_user_authentication"
    assert 'error="insufficient_user_authentication"' in challenge
    assert 'acr_values="aal2"' in challenge and "max_age=300" in challenge
    stale = tessera.token(acr="aal2", auth_time=int(time.time()) - 301)
    assert client.post("/payout", headers=_bearer(stale)).status_code == 401
    fresh = tessera.token(acr="aal2", auth_time=int(time.time()) - 10)
    assert client.post("/payout", headers=_bearer(fresh)).status_code == 200


def test_revocation_sensitive_route_asks_tessera(client, tessera) -> None:  # type: ignore[no-untyped-def]
    token = tessera.token(jti="j-1")
    assert client.get("/sensitive", headers=_bearer(token)).status_code == 200
    tessera.revoked.add("j-1")
    assert client.get("/notes", headers=_bearer(token)).status_code == 200  # offline: can't know
    time.sleep(0.25)  # past the introspection cache
    response = client.get("/sensitive", headers=_bearer(token))
    assert response.status_code == 401 and client.auth.rejections["revoked"] == 1


def test_introspection_unreachable_fails_closed(client, tessera) -> None:  # type: ignore[no-untyped-def]
    token = tessera.token()
    assert client.get("/notes", headers=_bearer(token)).status_code == 200  # keys fetched
    tessera.down = True
    assert client.get("/sensitive", headers=_bearer(token)).status_code == 401
    assert client.get("/notes", headers=_bearer(token)).status_code == 200  # last good keys


def test_keys_never_fetched_is_503_not_500(client, tessera) -> None:  # type: ignore[no-untyped-def]
    tessera.down = True
    response = client.get("/notes", headers=_bearer(tessera.token()))
    assert response.status_code == 503 and response.get_json()["error"] == "unavailable"


def test_a_legacy_token_proves_only_who_it_names(tessera) -> None:  # type: ignore[no-untyped-def]
    """Whoever holds the shared secret writes any claims: roles, scopes, aal2 and a fresh
    auth_time in an HS256 payload buy nothing (dual phase, the token itself accepted)."""
    secret = "old-shared-secret-0123456789-abcdef"
    app = flask.Flask(__name__)
    verifier = Verifier(tessera.url, tessera.audience, metadata_url=tessera.metadata_url,
                        legacy_secrets=[secret], background=False)
    auth = TesseraAuth(app, verifier=verifier)

    @app.get("/open")
    @auth.require()
    def open_route():  # type: ignore[no-untyped-def]
        return {"sub": current_token().subject}

    @app.post("/payout")
    @auth.require("payouts:write", roles=("finance",), acr="aal2", max_age=300)
    def payout():  # type: ignore[no-untyped-def]
        return {"ok": True}

    @app.get("/finance")
    @auth.require(roles=("finance",))
    def finance():  # type: ignore[no-untyped-def]
        return {"ok": True}

    @app.post("/step-up-only")
    @auth.require(acr="aal2", max_age=300)
    def step_up_only():  # type: ignore[no-untyped-def]
        return {"ok": True}

    client = app.test_client()
    forged = hs256(secret, {"sub": "alice", "exp": int(time.time()) + 600,
                            "scope": "payouts:write", "roles": ["finance"], "acr": "aal3",
                            "auth_time": int(time.time())})
    assert client.get("/open", headers=_bearer(forged)).status_code == 200  # it is accepted
    assert client.post("/payout", headers=_bearer(forged)).status_code == 403
    assert client.get("/finance", headers=_bearer(forged)).status_code == 403
    response = client.post("/step-up-only", headers=_bearer(forged))
    assert response.status_code == 401
    assert response.get_json()["error"] == "insufficient_user_authentication"
