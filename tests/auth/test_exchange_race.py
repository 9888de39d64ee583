"""One legacy token exchanged by many clients at once, against gunicorn with two workers
(issue 16, finding 4): exactly one session, every other request 401 and nothing made."""

from __future__ import annotations

import json
import threading
import time

import jwt
import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, AuthSession, RefreshToken
from tests.conftest import TEST_KEK
from tests.support.http import Reply, call
from tests.support.servers import AppServer
from tests.support.tokens import bearer, make_user

SECRET = "old-shared-secret-0123456789-abcdef"
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
        "TESSERA_LEGACY_HS256_SECRETS": json.dumps([SECRET]),
        "TESSERA_MIGRATION_PHASE": "dual",
        "TESSERA_RATELIMIT_EXCHANGE": "1000/minute",
    }, workers=2, threads=4)
    process.start()
    yield process
    process.stop()


def _race(server: AppServer, token: str) -> list[Reply]:
    """THREADS exchanges of ``token``, released together."""
    replies: list[Reply] = []
    barrier = threading.Barrier(THREADS)

    def go() -> None:
        barrier.wait(timeout=10)
        replies.append(call("POST", server.url + "/auth/token/exchange",
                            headers=bearer(token), timeout=30))

    threads = [threading.Thread(target=go) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(replies) == THREADS
    return replies


def _count(model, *where) -> int:  # type: ignore[no-untyped-def]
    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.mark.slow
def test_one_legacy_token_many_exchanges_make_one_session(app, server) -> None:  # type: ignore[no-untyped-def]
    exp = int(time.time()) + 3600
    tokens = [  # revoked by jti, and (no jti) by the token's hash
        jwt.encode({"sub": "1", "exp": exp, "jti": f"old-{n}"}, SECRET, algorithm="HS256")
        for n in range(2)
    ] + [jwt.encode({"sub": "1", "exp": exp}, SECRET, algorithm="HS256")]
    for token in tokens:
        replies = _race(server, token)
        statuses = sorted(r.status for r in replies)
        assert statuses == [200] + [401] * (THREADS - 1), [r.body for r in replies]
        losers = [r for r in replies if r.status == 401]
        assert all(r.json()["error"] == "invalid_token" for r in losers)
        assert not any(r.set_cookies for r in losers)  # no refresh cookie for a loser
        assert call("GET", server.url + "/api/me", headers=bearer(token)).status == 401
    with app.app_context():
        assert _count(AuthSession) == len(tokens)
        assert _count(RefreshToken) == len(tokens)
        assert _count(AuditEvent, AuditEvent.event == "LEGACY_TOKEN_EXCHANGED") == len(tokens)
        assert _count(AuditEvent, AuditEvent.event == "TOKEN_ISSUED") == len(tokens)
