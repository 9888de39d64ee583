"""What /metrics tells an operator (issue 19): a status class on request durations, and
gauges for the active key's age, legacy tokens in the last 24 h, the revocation mirror's
state and whether Redis answers."""

from __future__ import annotations

import jwt
import pytest

from tests.ops.test_hardening import _metric
from tests.support.actions import AuthActions
from tests.support.tokens import bearer, make_user

LEGACY = "old-shared-secret-0123456789-abcdef"


def _scrape(app) -> str:  # type: ignore[no-untyped-def]
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_request_durations_carry_the_status_class(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    client = app.test_client()
    assert client.get("/api/me").status_code == 401
    assert client.get("/healthz").status_code == 200
    text = _scrape(app)
    name = "tessera_request_seconds_count"
    assert _metric(text, name, endpoint="api.me", method="GET", status="4xx") == 1
    assert _metric(text, name, endpoint="ops.healthz", method="GET", status="2xx") == 1
    assert _metric(text, name, endpoint="api.me", status="2xx") == 0


def test_gauges_for_keys_and_legacy_use(make_app, clock) -> None:  # type: ignore[no-untyped-def]
    app = make_app(clock=clock, LEGACY_HS256_SECRETS=[LEGACY], MIGRATION_PHASE="dual")
    make_user(app, "alice")
    clock.advance(120)
    text = _scrape(app)
    assert _metric(text, "tessera_active_key_age_seconds") == 120
    assert _metric(text, "tessera_legacy_tokens_24h") == 0
    assert "tessera_legacy_token_last_seen_timestamp_seconds" not in text
    assert _metric(text, "tessera_revocation_mirror_state", state="off") == 1
    assert "tessera_redis_up" not in text  # no REDIS_URL: nothing to reach
    legacy = jwt.encode({"sub": "1", "exp": int(clock().timestamp()) + 600}, LEGACY,
                        algorithm="HS256")
    for _ in range(3):
        assert app.test_client().get("/api/me", headers=bearer(legacy)).status_code == 200
    text = _scrape(app)
    assert _metric(text, "tessera_legacy_tokens_24h") == 3
    assert _metric(text, "tessera_legacy_token_last_seen_timestamp_seconds") == \
        pytest.approx(clock().timestamp())
    clock.advance(3 * 86400)  # days later: nothing in the last 24 h
    assert _metric(_scrape(app), "tessera_legacy_tokens_24h") == 0


def test_redis_reachability_and_mirror_state(make_app, redis_server, redis_url) -> None:  # type: ignore[no-untyped-def]
    app = make_app(REDIS_URL=redis_url)
    make_user(app, "alice")
    token = AuthActions(app.test_client()).login().get_json()["access_token"]
    assert app.test_client().get("/api/me", headers=bearer(token)).status_code == 200
    text = _scrape(app)
    assert _metric(text, "tessera_redis_up") == 1
    assert _metric(text, "tessera_revocation_mirror_state", state="live") == 1
    redis_server.kill()
    try:
        assert _metric(_scrape(app), "tessera_redis_up") == 0
    finally:
        redis_server.start()
    assert _metric(_scrape(app), "tessera_redis_up") == 1
