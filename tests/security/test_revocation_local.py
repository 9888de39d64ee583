"""The per-process mirror of the revocation table, used without Redis (issue 21).

Two apps on one database stand for two processes: each has its own engine,
its own connections and its own mirror. On SQLite a revocation committed by
one is refused by the other's very next check; on PostgreSQL as soon as its
NOTIFY has arrived (bounded here by the mirror's two-second health window).
The gunicorn tests (test_revocation_processes, tests/perf) check the same
through HTTP, across workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select, text

from app.core.revocation import RevocationService
from app.extensions import db
from app.models import Revocation
from app.security.revocation import revocations
from tests.support.tokens import make_user

Check = Callable[..., str | None]


def _checker(app: Flask) -> tuple[RevocationService, Check]:
    def check(**fields: Any) -> str | None:
        lookup = {"jti": None, "sid": None, "user_id": None, "iat": None, "token_hash": None,
                  **fields}
        with app.test_request_context():
            return revocations().check(now=datetime.now(UTC), **lookup)
    with app.test_request_context():
        return revocations(), check


def _eventually(check: Check, expected: str | None, postgres: bool, **fields: Any) -> None:
    """SQLite: at once. PostgreSQL: once the NOTIFY has arrived (well under the bound)."""
    deadline = time.monotonic() + (2.0 if postgres else 0.0)
    while True:
        found = check(**fields)
        if found == expected or time.monotonic() >= deadline:
            break
        time.sleep(0.005)
    assert found == expected


def _is_postgres(app: Flask) -> bool:
    with app.app_context():
        return bool(db.engine.dialect.name == "postgresql")


@pytest.fixture
def pair(make_app):  # type: ignore[no-untyped-def]
    here, there = make_app(), make_app()
    uid = make_user(here, "alice")
    return here, there, uid


def test_the_mirror_answers_fresh_and_reused_tokens_without_a_query(pair) -> None:  # type: ignore[no-untyped-def]
    here, _, uid = pair
    service, check = _checker(here)
    assert check(jti="warm", sid="s-1", user_id=uid, iat=int(time.time())) is None
    assert service.state.local is not None and service.state.local.live
    statements: list[str] = []
    with here.app_context():
        engine = db.engine
    def listener(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", listener)
    try:
        for jti in ("warm", "never-seen-1", "never-seen-2"):  # reused, then fresh tokens
            assert check(jti=jti, sid="s-1", user_id=uid, iat=int(time.time())) is None
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert statements == []


def test_another_process_revocations_are_refused_here(pair) -> None:  # type: ignore[no-untyped-def]
    here, there, uid = pair
    postgres = _is_postgres(here)
    _, check = _checker(here)
    _, check_there = _checker(there)
    iat = int(time.time()) - 5
    token = {"jti": "j-1", "sid": "s-1", "user_id": uid, "iat": iat}
    assert check(**token) is None and check_there(**token) is None  # both mirrors warm
    now = datetime.now(UTC)
    with there.test_request_context():
        revocations().revoke_jti("j-1", now + timedelta(minutes=20), now)
    _eventually(check, "token_revoked", postgres, **token)
    other = {"jti": "j-2", "sid": "s-2", "user_id": uid, "iat": iat}
    assert check(**other) is None
    with there.test_request_context():
        revocations().revoke_session("s-2", now + timedelta(minutes=20), now)
    _eventually(check, "session_revoked", postgres, **other)
    with there.test_request_context():
        revocations().revoke_user(uid, now, now + timedelta(minutes=20))
    _eventually(check, "user_revoked", postgres, jti="j-3", sid="s-3", user_id=uid, iat=iat)
    # A second revoke-all moves the cutoff later: a row updated in place must reach the
    # mirror too (a token from between the two cutoffs, without sid, is refused).
    between = int(time.time()) + 2
    later = now + timedelta(seconds=10)
    assert check(jti="j-4", user_id=uid, iat=between) is None
    with there.test_request_context():
        revocations().revoke_user(uid, later, later + timedelta(minutes=20))
    _eventually(check, "user_revoked", postgres, jti="j-4", user_id=uid, iat=between)


def test_a_revocation_updated_in_place_keeps_the_later_cutoff(pair) -> None:  # type: ignore[no-untyped-def]
    here, _, uid = pair
    now = datetime.now(UTC)
    with here.test_request_context():
        service = revocations()
        service.revoke_user(uid, now, now + timedelta(minutes=20))
        service.revoke_user(uid, now - timedelta(minutes=5), now + timedelta(minutes=1))
        row = db.session.scalars(select(Revocation).where(Revocation.kind == "user")).one()
        assert row.not_before == now and row.expires_at == now + timedelta(minutes=20)
        if db.engine.dialect.name == "sqlite":  # a changed row takes a new, largest id
            assert row.id == db.session.scalar(select(func.max(Revocation.id)))


def test_purge_keeps_the_largest_id(pair) -> None:  # type: ignore[no-untyped-def]
    here, _, _ = pair
    now = datetime.now(UTC)
    with here.test_request_context():
        service = revocations()
        for jti in ("old-1", "old-2"):
            service.revoke_jti(jti, now - timedelta(seconds=1), now - timedelta(minutes=1))
        assert service.purge(now) == 1
        left = db.session.scalars(select(Revocation.value)).all()
        assert left == ["old-2"]


def test_a_broken_watch_sends_the_check_to_the_database(pair) -> None:  # type: ignore[no-untyped-def]
    here, there, uid = pair
    service, check = _checker(here)
    token = {"jti": "j-9", "sid": "s-9", "user_id": uid, "iat": int(time.time())}
    assert check(**token) is None
    local = service.state.local
    assert local is not None and local.live
    if _is_postgres(here):  # the listening connection dies under the mirror
        with there.app_context():
            db.session.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN%'"))
            db.session.commit()
    else:
        local._watch._raw.close()  # type: ignore[union-attr]
    now = datetime.now(UTC)
    with there.test_request_context():
        revocations().revoke_jti("j-9", now + timedelta(minutes=20), now)
    assert check(**token) == "token_revoked"  # the database answered
    assert not local.live or _is_postgres(here)
