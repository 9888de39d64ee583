"""A login's last step under the user's row lock (issue 15: a user revocation refuses
every session from before it, a login in flight included).

``confirm_new_session`` runs after the password check; these pin its rule with a
frozen clock. The race itself, over real workers, is in
tests/security/test_revocation_redis_ops.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from app import state
from app.core import sessions as session_service
from app.core import users as user_service
from app.extensions import db
from app.models import AuthSession, User
from app.security.issuing import session_limits
from app.security.revocation import revoke_user_tokens
from tests.support.tokens import make_user


@pytest.fixture
def setup(make_app, clock):  # type: ignore[no-untyped-def]
    app = make_app(clock=clock)
    return app, make_user(app, "alice"), clock


def _confirm(app, uid: int, checked_at, password_hash=None) -> None:  # type: ignore[no-untyped-def]
    with app.test_request_context():
        user = db.session.get(User, uid)
        sess, token = session_service.new_session(user, now=state.now(),
                                                  limits=session_limits())
        try:
            session_service.confirm_new_session(db.session(), sess, token,
                                                checked_at=checked_at,
                                                password_hash=password_hash)
            db.session.commit()
        finally:
            db.session.rollback()


def _sessions(app, uid: int) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return len(db.session.scalars(db.select(AuthSession).where(
            AuthSession.user_id == uid)).all())


def test_a_revoke_all_after_the_password_check_refuses_the_login(setup) -> None:  # type: ignore[no-untyped-def]
    app, uid, clock = setup
    checked_at = clock()
    clock.advance(0.000001)  # the revocation lands one microsecond after the check
    with app.test_request_context():
        revoke_user_tokens(uid, reason="test")
    with pytest.raises(session_service.LoginOvertaken):
        _confirm(app, uid, checked_at)
    assert _sessions(app, uid) == 0
    _confirm(app, uid, clock())  # checked at the cutoff's own instant: after it (SPEC §6)
    assert _sessions(app, uid) == 1


def test_a_disable_after_the_password_check_refuses_the_login(setup) -> None:  # type: ignore[no-untyped-def]
    app, uid, clock = setup
    checked_at = clock()
    with app.app_context():
        db.session.get(User, uid).disabled = True
        db.session.commit()
    with pytest.raises(session_service.LoginOvertaken):
        _confirm(app, uid, checked_at)
    assert _sessions(app, uid) == 0


def test_a_password_change_after_the_check_refuses_the_old_password(setup) -> None:  # type: ignore[no-untyped-def]
    app, uid, clock = setup
    checked_at = clock()
    with app.app_context():
        old_hash = db.session.get(User, uid).password_hash
        # The change's own clock may even read earlier than the check: the hash decides.
        user_service.change_password(db.session(), db.session.get(User, uid),
                                     "another long passphrase 42",
                                     checked_at - timedelta(seconds=1))
    with pytest.raises(session_service.LoginOvertaken):
        _confirm(app, uid, checked_at, password_hash=old_hash)
    assert _sessions(app, uid) == 0
