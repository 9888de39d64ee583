"""Turn MFA on for a user through the MFA service (the enrolment routes' own rules are
tested in tests/mfa; tests of other areas only need a user with a confirmed TOTP)."""

from __future__ import annotations

import pyotp
from flask import Flask
from sqlalchemy import select

from app import state
from app.core import mfa as mfa_service
from app.extensions import db
from app.models import User


def enroll_totp(app: Flask, username: str) -> pyotp.TOTP:
    """Confirm a new TOTP credential for ``username``; returns their authenticator."""
    with app.app_context():
        user = db.session.scalars(select(User).where(User.username == username)).one()
        kek = state.settings().key_encryption_key
        assert kek is not None
        enrollment = mfa_service.begin_enrollment(db.session(), kek, user.id, user.username,
                                                  "Tessera", state.now())
        totp = pyotp.TOTP(enrollment.secret)
        mfa_service.confirm_enrollment(db.session(), kek, user.id, totp.at(state.now()),
                                       state.now())
        return totp
