"""Keyring lifecycle, JWKS, migration phases and keys at rest (SPEC §4, issue 3)."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import select, text

from app import state
from app.core import keys as key_service
from app.core.keyring import SigningMaterial
from app.core.tokens import sign_token
from app.extensions import db
from app.models import SigningKey
from app.security import keyops, keyring, snapshot
from tests.conftest import TEST_KEK
from tests.support.tokens import bearer, claims_for, issue, make_user

LEGACY_SECRET = "old-shared-secret-0123456789-abcdef"


def _states(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return {row.kid: row.state for row in db.session.scalars(select(SigningKey))}


def _header(token: str) -> dict:  # type: ignore[type-arg]
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))


def _rotate(app, **options):  # type: ignore[no-untyped-def]
    with app.app_context():
        return keyops.rotate_signing_keys(**options)


@pytest.fixture
def timed(make_app, clock):  # type: ignore[no-untyped-def]
    """An app on the frozen clock, with one user."""
    app = make_app(clock=clock)
    return app, make_user(app)


def test_rotation_keeps_old_tokens_and_signs_with_the_new_kid(timed, clock) -> None:  # type: ignore[no-untyped-def]
    app, uid = timed
    client = app.test_client()
    before = issue(app, uid)
    clock.advance(301)  # the standby key has been published longer than the JWKS max-age
    result = _rotate(app)
    assert result.rotated and result.retired_kid == _header(before)["kid"]
    after = issue(app, uid)
    assert _header(after)["kid"] == result.active_kid != result.retired_kid
    assert client.get("/api/me", headers=bearer(before)).status_code == 200
    assert client.get("/api/me", headers=bearer(after)).status_code == 200


def test_young_standby_is_promoted_only_with_force(timed, clock) -> None:  # type: ignore[no-untyped-def]
    app, _ = timed
    with pytest.raises(key_service.RotationRefused, match="--force"):
        _rotate(app)
    assert _rotate(app, force=True).rotated


def test_if_due_rotates_only_when_the_active_key_is_old(timed, clock) -> None:  # type: ignore[no-untyped-def]
    app, _ = timed
    assert not _rotate(app, if_due=True).rotated
    clock.advance(timedelta(days=30).total_seconds())
    assert _rotate(app, if_due=True).rotated
    assert not _rotate(app, if_due=True).rotated  # the new active key is young again


def test_jwks_publishes_standby_active_retired_public_members_only(timed, clock) -> None:  # type: ignore[no-untyped-def]
    app, _ = timed
    clock.advance(301)
    result = _rotate(app)
    body = app.test_client().get("/.well-known/jwks.json").get_json()
    kids = {key["kid"] for key in body["keys"]}
    assert kids == {result.active_kid, result.retired_kid, result.standby_kid}
    for key in body["keys"]:
        assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}  # no "d"


def test_jwks_caching_headers_and_304(client) -> None:  # type: ignore[no-untyped-def]
    first = client.get("/.well-known/jwks.json")
    assert first.headers["Cache-Control"] == "public, max-age=300"
    etag = first.headers["ETag"]
    again = client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag


def test_retired_key_leaves_jwks_and_stops_verifying_after_ttl_and_leeway(timed, clock) -> None:  # type: ignore[no-untyped-def]
    app, uid = timed
    client = app.test_client()
    old_kid = _header(issue(app, uid))["kid"]
    clock.advance(301)
    _rotate(app)
    # Forged with a long exp so that only the key's retirement can stop it.
    with app.app_context():
        row = db.session.get(SigningKey, old_kid)
        private = key_service.load_private_key(row, state.settings().key_encryption_key)
    def forged() -> str:
        claims = claims_for(app, uid, exp=int(clock().timestamp()) + 3600)
        return sign_token(SigningMaterial(old_kid, "ES256", private), claims)

    clock.advance(900 + 29)  # just inside TTL + leeway after retirement
    with app.app_context():
        keyring().invalidate()
    assert client.get("/api/me", headers=bearer(forged())).status_code == 200
    assert old_kid in client.get("/.well-known/jwks.json").get_data(as_text=True)
    clock.advance(2)  # just outside
    with app.app_context():
        keyring().invalidate()
    assert client.get("/api/me", headers=bearer(forged())).status_code == 401
    assert old_kid not in client.get("/.well-known/jwks.json").get_data(as_text=True)
    with app.app_context():
        keyops.list_signing_keys()  # persists the transition
    assert _states(app)[old_kid] == "expired"


def test_revoked_key_is_unpublished_and_its_tokens_refused(timed) -> None:  # type: ignore[no-untyped-def]
    app, uid = timed
    client = app.test_client()
    token = issue(app, uid)
    kid = _header(token)["kid"]
    with app.app_context():
        keyops.revoke_signing_key(kid)
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert kid not in client.get("/.well-known/jwks.json").get_data(as_text=True)
    states = _states(app)
    assert states[kid] == "revoked"
    assert sorted(states.values()).count("active") == 1
    assert client.get("/api/me", headers=bearer(issue(app, uid))).status_code == 200


def test_concurrent_rotations_leave_exactly_one_active_key(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    errors: list[BaseException] = []
    start = threading.Barrier(10)

    def rotate_once() -> None:
        try:
            start.wait(timeout=10)
            _rotate(app, force=True)
        except key_service.RotationRefused:
            pass  # gave up after colliding: allowed, as long as the keyring stays whole
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=rotate_once) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    states = list(_states(app).values())
    assert states.count("active") == 1
    assert states.count("standby") >= 1


def test_private_keys_are_not_plaintext(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        rows = db.session.execute(
            text("SELECT kid, private_key_encrypted FROM signing_keys")
        ).all()
        assert rows
        for kid, stored in rows:
            stored = bytes(stored)
            assert b"PRIVATE KEY" not in stored and b"-----" not in stored
            private = key_service.load_private_key(db.session.get(SigningKey, kid),
                                                   state.settings().key_encryption_key)
            d = base64.urlsafe_b64decode(private.as_dict(private=True)["d"] + "==")
            assert d not in stored


def test_wrong_kek_stops_and_makes_no_new_keys(app, make_app) -> None:  # type: ignore[no-untyped-def]
    before = _states(app)
    other_kek = base64.urlsafe_b64encode(b"z" * 32).decode()
    wrong = make_app(keys=False, KEY_ENCRYPTION_KEY=other_kek)
    result = wrong.test_cli_runner().invoke(args=["keys", "ensure"])
    assert result.exit_code != 0
    assert "KEY_ENCRYPTION_KEY does not open signing key" in result.output
    assert _states(app) == before
    assert wrong.test_client().get("/readyz").get_json()["checks"]["signing_key"] == "down"
    assert TEST_KEK != other_kek


def test_pyjwt_verifies_our_token_with_the_served_jwks(app, client) -> None:  # type: ignore[no-untyped-def]
    uid = make_user(app)
    token = issue(app, uid)
    jwks = client.get("/.well-known/jwks.json").get_json()
    kid = _header(token)["kid"]
    jwk = next(key for key in jwks["keys"] if key["kid"] == kid)
    public = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, public, algorithms=["ES256"], audience="http://localhost/api",
                        issuer="http://localhost")
    assert claims["sub"] == str(uid)
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"


def test_metadata_documents(client) -> None:  # type: ignore[no-untyped-def]
    resource = client.get("/.well-known/oauth-protected-resource").get_json()
    assert resource["resource"] == "http://localhost/api"
    assert resource["authorization_servers"] == ["http://localhost"]
    assert resource["jwks_uri"] == "http://localhost/.well-known/jwks.json"
    assert resource["bearer_methods_supported"] == ["header"]
    server = client.get("/.well-known/oauth-authorization-server").get_json()
    assert server["issuer"] == "http://localhost"
    assert server["jwks_uri"] == resource["jwks_uri"]


# RFC 8414 §2 members, with the JSON type each must have.
_RFC8414_MEMBERS = {
    "issuer": str, "authorization_endpoint": str, "token_endpoint": str, "jwks_uri": str,
    "registration_endpoint": str, "scopes_supported": list, "response_types_supported": list,
    "response_modes_supported": list, "grant_types_supported": list,
    "token_endpoint_auth_methods_supported": list,
    "token_endpoint_auth_signing_alg_values_supported": list, "service_documentation": str,
    "ui_locales_supported": list, "op_policy_uri": str, "op_tos_uri": str,
    "revocation_endpoint": str, "revocation_endpoint_auth_methods_supported": list,
    "revocation_endpoint_auth_signing_alg_values_supported": list,
    "introspection_endpoint": str, "introspection_endpoint_auth_methods_supported": list,
    "introspection_endpoint_auth_signing_alg_values_supported": list,
    "code_challenge_methods_supported": list,
    "acr_values_supported": list,  # registered by OpenID Connect Discovery
}


def test_authorization_server_metadata_claims_only_what_tessera_serves(app, client) -> None:  # type: ignore[no-untyped-def]
    server = client.get("/.well-known/oauth-authorization-server").get_json()
    # RFC 8414 §2 allows extension members; Tessera's one is documented in the README
    # and checked in tests/security/test_migration_metadata.py.
    assert set(server) - {"tessera_migration"} <= set(_RFC8414_MEMBERS)
    server.pop("tessera_migration")
    for name, value in server.items():
        assert isinstance(value, _RFC8414_MEMBERS[name]), name
    assert {"issuer", "response_types_supported"} <= set(server)  # REQUIRED
    # No OAuth token endpoint exists, so none is named, and no grant is offered (the
    # password grant least of all: OAuth 2.1 drops it). Omitted, grant_types_supported
    # would default to authorization_code and implicit.
    assert "token_endpoint" not in server and server["grant_types_supported"] == []
    assert not any(name.endswith("_auth_signing_alg_values_supported") for name in server)
    # Every endpoint named is served.
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    for name in ("revocation_endpoint", "introspection_endpoint", "jwks_uri"):
        assert server[name].removeprefix("http://localhost") in routes, name


# --- migration phases (SPEC §4)


@pytest.fixture
def legacy_app(make_app):  # type: ignore[no-untyped-def]
    def build(phase: str, **settings):  # type: ignore[no-untyped-def]
        app = make_app(LEGACY_HS256_SECRETS=[LEGACY_SECRET], MIGRATION_PHASE=phase, **settings)
        return app, make_user(app)

    return build


def _old_system_token(uid: int, **claims) -> str:  # type: ignore[no-untyped-def]
    payload = {"sub": str(uid), "exp": int(time.time()) + 600, **claims}
    return jwt.encode(payload, LEGACY_SECRET, algorithm="HS256")


def test_legacy_phase_signs_hs256(legacy_app) -> None:  # type: ignore[no-untyped-def]
    app, uid = legacy_app("legacy")
    token = issue(app, uid)
    assert _header(token)["alg"] == "HS256"
    assert _header(token)["kid"].startswith("legacy-")
    assert LEGACY_SECRET not in _header(token)["kid"]
    assert app.test_client().get("/api/me", headers=bearer(token)).status_code == 200


def test_dual_phase_signs_es256_and_verifies_both(legacy_app) -> None:  # type: ignore[no-untyped-def]
    app, uid = legacy_app("dual")
    client = app.test_client()
    token = issue(app, uid)
    assert _header(token)["alg"] == "ES256"
    assert client.get("/api/me", headers=bearer(token)).get_json()["legacy"] is False
    old = _old_system_token(uid)  # no kid, typ, iss, aud, jti, iat
    me = client.get("/api/me", headers=bearer(old))
    assert me.status_code == 200, me.get_json()
    assert me.get_json()["legacy"] is True


def test_asymmetric_phase_rejects_hs256(legacy_app, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("INFO", logger="app.security")
    app, uid = legacy_app("asymmetric")
    response = app.test_client().get("/api/me", headers=bearer(_old_system_token(uid)))
    assert response.status_code == 401
    assert "token rejected: legacy_disabled" in caplog.text


def test_past_legacy_accept_until_rejects_hs256(legacy_app, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("INFO", logger="app.security")
    app, uid = legacy_app("dual", LEGACY_ACCEPT_UNTIL="2020-01-01T00:00:00Z")
    response = app.test_client().get("/api/me", headers=bearer(_old_system_token(uid)))
    assert response.status_code == 401
    assert "token rejected: legacy_disabled" in caplog.text


def test_phase_change_takes_effect_on_the_next_request(legacy_app) -> None:  # type: ignore[no-untyped-def]
    app, uid = legacy_app("dual")
    client = app.test_client()
    old = _old_system_token(uid)
    assert client.get("/api/me", headers=bearer(old)).status_code == 200
    result = app.test_cli_runner().invoke(args=["migration", "set", "asymmetric"])
    assert result.exit_code == 0, result.output
    assert client.get("/api/me", headers=bearer(old)).status_code == 401


def test_legacy_username_subject_and_usage_counts(legacy_app) -> None:  # type: ignore[no-untyped-def]
    app, _ = legacy_app("dual", LEGACY_SUBJECT_LOOKUP="username", LEGACY_SUBJECT_CLAIM="user")
    client = app.test_client()
    token = jwt.encode({"user": "alice", "exp": int(time.time()) + 60},
                       LEGACY_SECRET, algorithm="HS256")
    for _ in range(3):
        assert client.get("/api/me", headers=bearer(token)).get_json()["username"] == "alice"
    status = app.test_cli_runner().invoke(args=["migration", "status"])
    assert "phase: dual" in status.output
    assert "       3  last" in status.output


def test_fresh_install_without_legacy_secrets_is_asymmetric(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        assert snapshot().phase == "asymmetric"
    result = app.test_cli_runner().invoke(args=["migration", "set", "dual"])
    assert result.exit_code != 0 and "LEGACY_HS256_SECRETS" in result.output
