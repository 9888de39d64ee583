"""app/core/revocation over the database alone: each kind, merging, claim, purge (SPEC §6).

Every check runs twice: with the per-process mirror of the table and with the
database query alone (``local_mirror=False``); both must give the same verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.core.revocation import RevocationService, RevocationState
from app.core.revocation_rules import RevocationQuery, micros
from app.core.sessions import new_session, write_session
from app.models import AuthSession, Revocation
from tests.support.databases import LIMITS, NOW, add_user, commits

HOUR = timedelta(hours=1)
SECOND = int(NOW.timestamp())


@pytest.fixture(params=["mirror", "database"])
def service(request: pytest.FixtureRequest, db: Session) -> RevocationService:
    return RevocationService(db, None, state=RevocationState(
        local_mirror=request.param == "mirror"))


def _check(service: RevocationService, now: datetime = NOW, **facts: Any) -> str | None:
    values: dict[str, Any] = {"jti": None, "sid": None, "user_id": None, "iat": None,
                              "token_hash": None, **facts}
    return service.check(now=now, **values)


def _row(db: Session, kind: str, value: str) -> Revocation:
    db.expire_all()
    return db.scalars(select(Revocation).where(Revocation.kind == kind,
                                               Revocation.value == value)).one()


def test_a_revoked_jti_is_refused_until_it_expires(service: RevocationService) -> None:
    assert _check(service, jti="j1") is None  # the mirror starts on the first check
    local = service.state.local
    assert (local is not None and local.live) == service.state.local_mirror
    service.revoke_jti("j1", NOW + HOUR, NOW, "logout")
    assert _check(service, jti="j1") == "token_revoked"
    assert _check(service, jti="j2") is None
    assert _check(service, NOW + HOUR - timedelta(microseconds=1), jti="j1") == "token_revoked"
    assert _check(service, NOW + HOUR, jti="j1") is None  # outlived what it revoked


@pytest.mark.parametrize(("method", "facts", "reason"), [
    ("revoke_token_hash", {"token_hash": "v"}, "token_revoked"),
    ("revoke_kid", {"kid": "v"}, "key_revoked"),
    ("revoke_session", {"sid": "v"}, "session_revoked"),
])
def test_each_kind_refuses_its_tokens(service: RevocationService, method: str,
                                      facts: dict[str, Any], reason: str) -> None:
    assert _check(service, **facts) is None
    getattr(service, method)("v", NOW + HOUR, NOW)
    assert _check(service, **facts) == reason
    assert _check(service, jti="other", sid="other") is None


def test_revoking_a_user_ends_sessions_and_earlier_tokens(service: RevocationService,
                                                          db: Session, engine: Engine) -> None:
    user, other = add_user(db), add_user(db, "bob")
    sids = []
    for owner in (user, user, other):
        sess, token = new_session(owner, now=NOW - HOUR, limits=LIMITS)
        write_session(db, sess, token)
        sids.append(sess.id)
    db.commit()
    _check(service, jti="warm-up")
    cutoff = NOW + timedelta(milliseconds=250)
    with commits(engine) as count:
        ended = service.revoke_user(user.id, cutoff, cutoff + HOUR, "logout_all")
    assert count[0] == 1  # the sessions, the sid rows and the cutoff in one transaction
    assert sorted(ended) == sorted(sids[:2])
    db.expire_all()
    assert [db.get(AuthSession, sid).revoked_at for sid in sids] == [  # type: ignore[union-attr]
        cutoff, cutoff, None]
    assert _check(service, cutoff, sid=sids[0], user_id=user.id, iat=SECOND + 1) == (
        "session_revoked")
    assert _check(service, cutoff, user_id=user.id, iat=SECOND - 1) == "user_revoked"
    assert _check(service, cutoff, user_id=user.id, iat=SECOND) == "user_revoked"
    # A login after the cutoff, within its second: a new session's token passes.
    assert _check(service, cutoff, sid="new", user_id=user.id, iat=SECOND) is None
    assert _check(service, cutoff, sid=sids[2], user_id=other.id, iat=SECOND - 1) is None


def test_a_legacy_cutoff_spares_es256_tokens(service: RevocationService) -> None:
    _check(service, jti="warm-up")
    service.revoke_legacy_user(7, NOW, NOW + HOUR, "password_changed")
    legacy = RevocationQuery.of(jti=None, sid="s", user_id=7, iat=SECOND, token_hash="h",
                                legacy=True)
    modern = RevocationQuery.of(jti="j", sid="s", user_id=7, iat=SECOND - 60, token_hash=None)
    assert service.check_query(legacy, NOW) == "legacy_cutoff"
    assert service.check_query(modern, NOW) is None


def test_a_user_cutoff_keeps_the_latest_and_the_longest(service: RevocationService,
                                                        db: Session) -> None:
    later = NOW + timedelta(minutes=5)
    service.revoke_user(7, later, later + 2 * HOUR)
    service.revoke_user(7, NOW, NOW + HOUR)  # earlier and shorter: changes nothing
    row = _row(db, "user", "7")
    assert row.not_before == later and row.expires_at == later + 2 * HOUR
    assert _check(service, later, user_id=7, iat=SECOND + 60) == "user_revoked"
    service.revoke_user(7, later + HOUR, later + HOUR)  # later cutoff, shorter life
    row = _row(db, "user", "7")
    assert row.not_before == later + HOUR and row.expires_at == later + 2 * HOUR


def test_a_shorter_revocation_never_shortens_one(service: RevocationService,
                                                 db: Session) -> None:
    service.revoke_jti("j1", NOW + 2 * HOUR, NOW)
    service.revoke_jti("j1", NOW + timedelta(minutes=1), NOW)
    assert _row(db, "jti", "j1").expires_at == NOW + 2 * HOUR
    assert _check(service, NOW + HOUR, jti="j1") == "token_revoked"


def test_a_claim_is_single_use(service: RevocationService, db: Session,
                               engine: Engine) -> None:
    told: list[Sequence[tuple[str, str, datetime | None]]] = []
    service.listeners.append(lambda _db, entries, *_: told.append(entries))
    _check(service, jti="warm-up")
    with commits(engine) as count:
        assert service.claim("jti", "code-1", NOW + HOUR, NOW, "exchange")
        assert not service.claim("jti", "code-1", NOW + HOUR, NOW, "exchange")
    assert count[0] == 0  # the caller owns the transaction
    db.commit()
    service.publish("jti", "code-1", NOW + HOUR, NOW)
    assert _check(service, jti="code-1") == "token_revoked"
    assert told == [[("jti", "code-1", None)]]  # told once: the losing claim inserted nothing
    with Session(engine) as other:
        assert not RevocationService(other, None, state=RevocationState()).claim(
            "jti", "code-1", NOW + HOUR, NOW)


def test_purge_keeps_what_is_still_valid(service: RevocationService, db: Session) -> None:
    service.revoke_jti("old-1", NOW + timedelta(minutes=1), NOW)
    service.revoke_jti("old-2", NOW + timedelta(minutes=2), NOW)
    service.revoke_user(7, NOW, NOW + HOUR)
    service.revoke_jti("old-3", NOW + timedelta(minutes=3), NOW)  # the largest id
    assert service.purge(NOW + timedelta(minutes=30)) == 2
    left = {(row.kind, row.value) for row in db.scalars(select(Revocation))}
    assert left == {("user", "7"), ("jti", "old-3")}  # the largest id stays (mirror ids)
    assert _check(service, NOW + timedelta(minutes=30), user_id=7, iat=SECOND - 1) == (
        "user_revoked")
    assert service.live_rows(NOW + timedelta(minutes=30)) == [("user", "7", NOW, NOW + HOUR)]


def test_the_cutoff_is_stored_to_the_microsecond(service: RevocationService,
                                                 db: Session) -> None:
    cutoff = NOW + timedelta(microseconds=123_457)
    service.revoke_user(7, cutoff, NOW + HOUR)
    assert micros(_row(db, "user", "7").not_before or NOW) == micros(cutoff)
