"""app/core/sessions without an app: creation, rotation, the grace path, reuse, expiry.

An engine over the models (tests/support/databases.py), ``now`` passed in, on
SQLite and, with TEST_DATABASE_URL, on PostgreSQL (SPEC §5).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from app.core.crypto import sha256_hex
from app.core.revocation import RevocationService, RevocationState
from app.core.sessions import (
    LoginOvertaken,
    RefreshFailed,
    ReuseDetected,
    confirm_new_session,
    find_refresh_token,
    is_live,
    live_sessions,
    new_session,
    rotate_found,
    rotate_refresh_token,
    session_of_refresh_token,
    write_session,
)
from app.models import AuthSession, RefreshToken, Revocation, User
from tests.support.databases import LIMITS, NOW, add_user, commits

GRACE = LIMITS.reuse_grace


def _login(db: Session, user: User) -> tuple[AuthSession, str]:
    sess, token = new_session(user, now=NOW, limits=LIMITS, user_agent="u" * 600,
                              ip="203.0.113.7", amr=["pwd", "otp"], acr="aal2")
    write_session(db, sess, token)
    db.commit()
    stored = db.get(AuthSession, sess.id)  # the written row, for tests to change
    assert stored is not None
    return stored, token


def test_a_new_session_is_written_by_the_callers_transaction(db: Session,
                                                             engine: Engine) -> None:
    user = add_user(db)
    with commits(engine) as count:
        sess, token = new_session(user, now=NOW, limits=LIMITS)
        write_session(db, sess, token)
        with Session(engine) as other:  # not committed: another connection sees nothing
            assert other.scalars(select(AuthSession)).all() == []
    assert count[0] == 0
    db.commit()
    stored = db.get(AuthSession, sess.id)
    assert stored is not None and stored.user_id == user.id
    assert stored.expires_at == NOW + LIMITS.max_age and stored.last_used_at == NOW
    assert stored.amr == ["pwd"] and stored.auth_time == NOW


def test_the_refresh_token_is_stored_only_as_its_hash(db: Session) -> None:
    sess, token = _login(db, add_user(db))
    assert len(token) >= 43  # 256 bits in base64url
    rows = db.scalars(select(RefreshToken)).all()
    assert [row.token_hash for row in rows] == [sha256_hex(token)]
    stored = db.connection().exec_driver_sql(
        "SELECT * FROM refresh_tokens").all()
    assert token not in repr(stored)
    assert sess.user_agent == "u" * 512  # truncated to the column


def test_a_refresh_rotates_in_one_commit(db: Session, engine: Engine) -> None:
    sess, first = _login(db, add_user(db))
    later = NOW + timedelta(hours=1)
    with commits(engine) as count:
        result = rotate_refresh_token(db, first, later, LIMITS)
    assert count[0] == 1
    assert result.rotated and result.refresh_token != first and result.session.id == sess.id
    old, new = db.scalars(select(RefreshToken).order_by(RefreshToken.id)).all()
    assert old.consumed_at == later and old.successor_sealed is not None
    assert result.refresh_token.encode() not in old.successor_sealed  # sealed, not plain
    assert new.token_hash == sha256_hex(result.refresh_token) and new.consumed_at is None
    db.expire_all()
    assert db.get(AuthSession, sess.id).last_used_at == later  # type: ignore[union-attr]
    assert session_of_refresh_token(db, result.refresh_token) is not None
    assert session_of_refresh_token(db, first) is None


def test_the_previous_token_within_grace_gets_the_current_one(db: Session) -> None:
    _, first = _login(db, add_user(db))
    second = rotate_refresh_token(db, first, NOW, LIMITS).refresh_token
    again = rotate_refresh_token(db, first, NOW + GRACE, LIMITS)
    assert not again.rotated and again.refresh_token == second
    assert len(db.scalars(select(RefreshToken)).all()) == 2  # nothing new minted


def test_the_previous_token_after_grace_is_reuse(db: Session) -> None:
    sess, first = _login(db, add_user(db))
    rotate_refresh_token(db, first, NOW, LIMITS)
    with pytest.raises(ReuseDetected) as caught:
        rotate_refresh_token(db, first, NOW + GRACE + timedelta(microseconds=1), LIMITS)
    assert caught.value.reason == "refresh_token_reused" and caught.value.session_id == sess.id


def test_only_the_immediately_previous_token_has_grace(db: Session) -> None:
    _, first = _login(db, add_user(db))
    second = rotate_refresh_token(db, first, NOW, LIMITS).refresh_token
    rotate_refresh_token(db, second, NOW, LIMITS)
    with pytest.raises(ReuseDetected):
        rotate_refresh_token(db, first, NOW, LIMITS)  # two rotations ago, within the window


def test_reuse_then_revoking_the_session_ends_the_family(db: Session) -> None:
    sess, first = _login(db, add_user(db))
    current = rotate_refresh_token(db, first, NOW, LIMITS).refresh_token
    later = NOW + timedelta(minutes=5)
    with pytest.raises(ReuseDetected):
        rotate_refresh_token(db, first, later, LIMITS)
    service = RevocationService(db, None, state=RevocationState(local_mirror=False))
    service.revoke_session(sess.id, later + timedelta(minutes=15), later, "refresh_token_reused")
    with pytest.raises(RefreshFailed) as caught:
        rotate_refresh_token(db, current, later, LIMITS)
    assert caught.value.reason == "session_revoked"
    assert service.check(jti=None, sid=sess.id, user_id=None, iat=None, token_hash=None,
                         now=later) == "session_revoked"


def test_two_refreshes_with_one_token_rotate_once(engine: Engine, db: Session) -> None:
    _, first = _login(db, add_user(db))
    with Session(engine) as a, Session(engine) as b:
        found_a = find_refresh_token(a, first, NOW, LIMITS)
        found_b = find_refresh_token(b, first, NOW, LIMITS)  # both read it unconsumed
        won = rotate_found(a, found_a, first, NOW, LIMITS)
        a.commit()
        lost = rotate_found(b, found_b, first, NOW, LIMITS)  # the database refuses b's UPDATE
        b.commit()
    assert won.rotated and not lost.rotated and lost.refresh_token == won.refresh_token
    assert len(db.scalars(select(RefreshToken)).all()) == 2


@pytest.mark.parametrize(("case", "reason"), [
    ("unknown", "unknown_token"), ("expired", "session_expired"), ("idle", "session_idle"),
    ("disabled", "user_disabled"), ("revoked", "session_revoked"),
])
def test_an_unusable_token_is_refused(db: Session, case: str, reason: str) -> None:
    user = add_user(db)
    sess, token = _login(db, user)
    now = NOW + timedelta(hours=1)
    if case == "unknown":
        token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    elif case == "expired":
        now = NOW + LIMITS.max_age
        db.execute(update(AuthSession).values(last_used_at=now - timedelta(hours=1)))
    elif case == "idle":
        now = NOW + LIMITS.idle_timeout
    elif case == "disabled":
        user.disabled = True
    else:
        sess.revoked_at = NOW
    db.commit()
    with pytest.raises(RefreshFailed) as caught:
        rotate_refresh_token(db, token, now, LIMITS)
    assert caught.value.reason == reason and not isinstance(caught.value, ReuseDetected)
    db.rollback()
    assert db.scalars(select(RefreshToken)).one().consumed_at is None  # nothing consumed


def test_live_sessions_skip_revoked_expired_and_idle(db: Session) -> None:
    user = add_user(db)
    sessions = [_login(db, user)[0] for _ in range(4)]
    now = NOW + timedelta(days=2)
    sessions[0].revoked_at = NOW
    sessions[1].last_used_at = now - LIMITS.idle_timeout
    sessions[2].expires_at = now
    sessions[3].last_used_at = now - timedelta(hours=1)
    newest = _login(db, user)[0]
    newest.last_used_at = now
    db.commit()
    assert [s.id for s in live_sessions(db, user.id, now, LIMITS)] == [newest.id, sessions[3].id]
    assert [is_live(s, now, LIMITS) for s in sessions] == [False, False, False, True]


@pytest.mark.parametrize("change", ["disabled", "password_changed", "password_hash",
                                    "revoked_all", "none", "revoked_before", "revoked_same"])
def test_a_login_overtaken_in_flight_gets_no_session(db: Session, change: str) -> None:
    user = add_user(db)
    checked_at = NOW
    later = checked_at + timedelta(microseconds=1)
    if change == "disabled":
        user.disabled = True
    elif change == "password_changed":
        user.password_changed_at = later
    elif change.startswith("revoked"):
        # A cutoff at the very instant of the check counts as before the login (SPEC §6:
        # a login right after a revoke-all, on a frozen clock, keeps its session).
        cutoff = {"revoked_all": later, "revoked_before": checked_at - timedelta(seconds=1),
                  "revoked_same": checked_at}[change]
        db.add(Revocation(kind="user", value=str(user.id), not_before=cutoff, created_at=cutoff,
                          expires_at=NOW + timedelta(hours=1), reason="logout_all"))
    db.commit()
    sess, token = new_session(user, now=NOW, limits=LIMITS)
    expected = "argon2-hash" if change != "password_hash" else "an-older-hash"
    if change in ("none", "revoked_before", "revoked_same"):
        confirm_new_session(db, sess, token, checked_at=checked_at, password_hash=expected)
        db.commit()
        assert db.get(AuthSession, sess.id) is not None
        return
    with pytest.raises(LoginOvertaken):
        confirm_new_session(db, sess, token, checked_at=checked_at, password_hash=expected)
    db.rollback()
    assert db.scalars(select(AuthSession)).all() == []
