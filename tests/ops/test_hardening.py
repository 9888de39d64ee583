"""Rate limits, security headers, no-store, metrics across workers (SPEC §9, issue 8)."""

from __future__ import annotations

import os
import re
import sqlite3
import stat

import pytest
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from app.security.keyops import ensure_signing_keys
from tests.conftest import MIGRATIONS, TEST_KEK
from tests.support.actions import AuthActions
from tests.support.http import call
from tests.support.servers import AppServer
from tests.support.tokens import PASSWORD, bearer, make_user


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False)
    make_user(app, "alice")
    return app


def _wrong(client, username: str = "alice", **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/auth/login", json={"username": username, "password": "not it at all"},
                       headers=headers)


def test_eleventh_wrong_login_from_one_address_is_429(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    for n in range(10):  # spread over usernames: the per-address limit still counts
        assert _wrong(client, f"user{n}").status_code == 401
    refused = _wrong(client, "someone-else")
    assert refused.status_code == 429
    assert refused.get_json()["error"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 60  # the end of the minute's window
    assert "X-RateLimit-Remaining" not in refused.headers
    # Forging X-Forwarded-For does not help without trusted proxies.
    assert _wrong(client, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 429
    # Even the right password waits: the address is throttled.
    right = client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert right.status_code == 429


def test_successful_logins_do_not_count(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    for _ in range(12):
        ok = AuthActions(client).login()
        assert ok.status_code == 200
        assert "Retry-After" not in ok.headers  # only a refusal says when to come back


def test_trusted_proxy_address_is_used_when_configured(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(TRUSTED_PROXIES=1)
    client = app.test_client()
    for n in range(10):
        assert _wrong(client, f"u{n}", **{"X-Forwarded-For": "198.51.100.1"}).status_code == 401
    assert _wrong(client, "v", **{"X-Forwarded-For": "198.51.100.1"}).status_code == 429
    assert _wrong(client, "w", **{"X-Forwarded-For": "198.51.100.2"}).status_code == 401


def test_per_username_limit_counts_across_addresses(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(TRUSTED_PROXIES=1)
    client = app.test_client()
    for n in range(10):
        assert _wrong(client, **{"X-Forwarded-For": f"198.51.100.{n}"}).status_code == 401
    assert _wrong(client, **{"X-Forwarded-For": "198.51.100.99"}).status_code == 429


def _routes(app):  # type: ignore[no-untyped-def]
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?[^>]+>", "1", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def test_every_response_has_the_security_headers(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    token = AuthActions(client).login().get_json()["access_token"]
    seen = 0
    for method, path in _routes(app):
        for headers in ({}, bearer(token)):
            response = client.open(path, method=method, headers=headers, json={})
            seen += 1
            assert "default-src 'self'" in response.headers["Content-Security-Policy"], path
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "same-origin"
            assert response.headers["X-Frame-Options"] == "DENY"
            body = response.get_json(silent=True)
            secrets = {"access_token", "mfa_token", "recovery_codes", "secret"}
            carries_token = isinstance(body, dict) and bool(secrets & set(body))
            if carries_token or response.headers.get("Set-Cookie"):
                assert response.headers["Cache-Control"] == "no-store", (method, path)
    assert seen > 40


def test_hsts_only_over_https(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert "Strict-Transport-Security" not in client.get("/healthz").headers
    secure = client.get("/healthz", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_token_responses_are_no_store(app) -> None:  # type: ignore[no-untyped-def]
    auth = AuthActions(app.test_client())
    assert auth.login().headers["Cache-Control"] == "no-store"
    assert auth.refresh().headers["Cache-Control"] == "no-store"
    jwks = auth.client.get("/.well-known/jwks.json")
    assert jwks.headers["Cache-Control"].startswith("public")


def test_metrics_guard(make_app) -> None:  # type: ignore[no-untyped-def]
    open_app = make_app()
    assert open_app.test_client().get("/metrics").status_code == 200  # loopback test client
    remote = open_app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert remote.status_code == 403
    guarded = make_app(METRICS_TOKEN="m-token-123")
    client = guarded.test_client()
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers=bearer("m-token-123")).status_code == 200


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.slow
def test_metrics_sum_across_two_workers(app, database_url, redis_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = AppServer({
        "TESSERA_DATABASE_URL": database_url, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_ISSUER": "http://localhost", "TESSERA_COOKIE_SECURE": "false",
        "TESSERA_REDIS_URL": redis_url, "TESSERA_INSTANCE_PATH": str(tmp_path / "srv"),
        "TESSERA_RATELIMIT_LOGIN_PER_IP": "1000/minute",
    }, workers=2, threads=2).start()
    try:
        token = call("POST", server.url + "/auth/login",
                     json_body={"username": "alice", "password": PASSWORD}).json()["access_token"]
        for _ in range(7):
            assert call("GET", server.url + "/api/me", headers=bearer(token)).status == 200
        for _ in range(5):
            assert call("GET", server.url + "/api/me", headers=bearer("x.y.z")).status == 401
        for _ in range(3):
            assert call("GET", server.url + "/api/me",
                        headers=bearer(token[:-3] + "AAA")).status == 401
        text = call("GET", server.url + "/metrics").body.decode()
    finally:
        server.stop()
    name = "tessera_token_verifications_total"
    assert _metric(text, name, result="valid", reason="ok") == 7
    assert _metric(text, name, result="invalid", reason="malformed") == 5
    assert _metric(text, name, result="invalid", reason="bad_signature") == 3
    assert _metric(text, "tessera_logins_total", result="success") == 1
    assert "tessera_request_seconds_bucket" in text


@pytest.mark.slow
def test_two_workers_share_login_limits_through_redis(  # type: ignore[no-untyped-def]
        app, database_url, redis_url, tmp_path) -> None:
    server = AppServer({
        "TESSERA_DATABASE_URL": database_url, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_ISSUER": "http://localhost", "TESSERA_REDIS_URL": redis_url,
        "TESSERA_INSTANCE_PATH": str(tmp_path / "srv"),
    }, workers=2, threads=2).start()
    try:
        statuses = [call("POST", server.url + "/auth/login",
                         json_body={"username": f"u{n}", "password": "wrong"}).status
                    for n in range(12)]
    finally:
        server.stop()
    # Each request is a new connection, so both workers serve some; the count is shared.
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]


# --- issue 16 item 7: what Tessera keeps in instance/ is its user's alone

def _modes(folder) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in [folder, *folder.iterdir()]}


def _embedded_app_with_a_write(instance):  # type: ignore[no-untyped-def]
    """The embedded default (SQLite and key file in ``instance``), migrated, with a user
    written; its pooled connection stays open, so SQLite's WAL and SHM files exist."""
    app = create_app({}, instance_path=str(instance))
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        ensure_signing_keys()
    make_user(app, "alice")
    return app


def test_instance_files_are_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    instance = tmp_path / "instance"
    old_umask = os.umask(0o022)  # the usual one: files 0644, folders 0755 unless chosen
    try:
        app = _embedded_app_with_a_write(instance)
    finally:
        os.umask(old_umask)
    try:
        assert _modes(instance) == {"instance": 0o700, "tessera.db": 0o600,
                                    "tessera.db-wal": 0o600, "tessera.db-shm": 0o600,
                                    "key-encryption-key": 0o600}
    finally:
        with app.app_context():
            db.engine.dispose()


def test_an_existing_install_is_tightened_on_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    instance = tmp_path / "instance"
    app = _embedded_app_with_a_write(instance)
    with app.app_context():
        db.engine.dispose()
    # As an older Tessera left them, with a worker of it still running (WAL and SHM open).
    instance.chmod(0o755)
    for name in ("tessera.db", "key-encryption-key"):
        (instance / name).chmod(0o644)
    old = sqlite3.connect(instance / "tessera.db")
    try:
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("UPDATE users SET username = username")
        old.commit()
        for name in ("tessera.db-wal", "tessera.db-shm"):
            (instance / name).chmod(0o644)
        assert set(_modes(instance).values()) == {0o755, 0o644}
        restarted = create_app({}, instance_path=str(instance))
        assert _modes(instance) == {"instance": 0o700, "tessera.db": 0o600,
                                    "tessera.db-wal": 0o600, "tessera.db-shm": 0o600,
                                    "key-encryption-key": 0o600}
        assert AuthActions(restarted.test_client()).login().status_code == 200
    finally:
        old.close()
        with restarted.app_context():
            db.engine.dispose()
