"""A login's session, written with Core statements by its confirmation: every column
as ``new_session`` made it, one commit, nothing left behind when the login is overtaken.

On SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.core.crypto import sha256_hex
from app.core.sessions import (
    LoginOvertaken,
    confirm_new_session,
    find_refresh_token,
    new_session,
)
from app.models import AuthSession, RefreshToken
from tests.support.databases import LIMITS, NOW, add_user, commits


def test_a_new_session_is_written_by_its_confirmation(
        db: Session, engine: Engine) -> None:
    user = add_user(db)
    user_id = user.id
    with commits(engine) as count:
        sess, token = new_session(user, now=NOW, limits=LIMITS, user_agent="u" * 600,
                                  ip="192.0.2.1", acr="aal2", amr=["pwd", "otp"])
        assert db.scalars(select(AuthSession)).all() == []  # nothing added, nothing flushed
        confirm_new_session(db, sess, token, checked_at=NOW, password_hash=user.password_hash)
        db.commit()
    assert count[0] == 1
    db.expunge_all()
    stored = db.get(AuthSession, sess.id)
    assert stored is not None and stored.user_id == user_id and stored.revoked_at is None
    assert (stored.created_at, stored.last_used_at, stored.auth_time) == (NOW, NOW, NOW)
    assert stored.expires_at == NOW + LIMITS.max_age
    assert (stored.user_agent, stored.ip) == ("u" * 512, "192.0.2.1")
    assert (stored.acr, stored.amr, stored.client_id) == ("aal2", ["pwd", "otp"], "web")
    rows = db.scalars(select(RefreshToken)).all()
    assert [(r.session_id, r.token_hash, r.created_at, r.consumed_at) for r in rows] == [
        (sess.id, sha256_hex(token), NOW, None)]
    found = find_refresh_token(db, token, NOW + timedelta(minutes=1), LIMITS)
    assert found.session.id == sess.id and found.user.id == user_id


def test_an_overtaken_login_leaves_nothing(db: Session) -> None:
    user = add_user(db)
    user.disabled = True
    db.commit()
    sess, token = new_session(user, now=NOW, limits=LIMITS)
    with pytest.raises(LoginOvertaken):
        confirm_new_session(db, sess, token, checked_at=NOW)
    db.rollback()
    assert db.scalars(select(AuthSession)).all() == []
    assert db.scalars(select(RefreshToken)).all() == []
