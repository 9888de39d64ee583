"""The migration phase and sunset published in the RFC 8414 metadata (issue 17).

Resource servers learn from ``tessera_migration`` whether HS256 tokens are still
accepted; the document is cacheable for METADATA_MAX_AGE and conditional (ETag).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.security.test_keyring import LEGACY_SECRET

METADATA = "/.well-known/oauth-authorization-server"


def _member(client):  # type: ignore[no-untyped-def]
    return client.get(METADATA).get_json()["tessera_migration"]


def test_fresh_install_publishes_asymmetric(client) -> None:  # type: ignore[no-untyped-def]
    member = _member(client)
    assert member == {"phase": "asymmetric", "legacy_accepted": False, "legacy_sunset": None}


def test_phase_and_sunset_follow_the_cli(make_app, clock) -> None:  # type: ignore[no-untyped-def]
    sunset = clock() + timedelta(seconds=60)
    app = make_app(clock=clock, LEGACY_HS256_SECRETS=[LEGACY_SECRET], MIGRATION_PHASE="legacy",
                   LEGACY_ACCEPT_UNTIL=sunset.isoformat(), KEYRING_REFRESH=1)
    client = app.test_client()
    assert _member(client) == {"phase": "legacy", "legacy_accepted": True,
                               "legacy_sunset": sunset.timestamp()}
    result = app.test_cli_runner().invoke(args=["migration", "set", "dual"])
    assert result.exit_code == 0, result.output
    clock.advance(2)  # past KEYRING_REFRESH: every worker has the new phase
    assert _member(client)["phase"] == "dual"
    assert _member(client)["legacy_accepted"] is True
    clock.advance(60)  # the sunset: still dual, but HS256 no longer accepted
    assert _member(client) == {"phase": "dual", "legacy_accepted": False,
                               "legacy_sunset": sunset.timestamp()}


def test_metadata_is_cacheable_and_conditional(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(METADATA_MAX_AGE=7)
    client = app.test_client()
    first = client.get(METADATA)
    assert first.headers["Cache-Control"] == "public, max-age=7"
    etag = first.headers["ETag"]
    again = client.get(METADATA, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert client.get(METADATA, headers={"If-None-Match": '"other"'}).status_code == 200


def test_sunset_in_the_past_is_published_as_refused(make_app) -> None:  # type: ignore[no-untyped-def]
    past = datetime.now(UTC) - timedelta(days=1)
    app = make_app(LEGACY_HS256_SECRETS=[LEGACY_SECRET], MIGRATION_PHASE="dual",
                   LEGACY_ACCEPT_UNTIL=past.isoformat())
    member = _member(app.test_client())
    assert member["phase"] == "dual" and member["legacy_accepted"] is False
    assert member["legacy_sunset"] == past.timestamp()
