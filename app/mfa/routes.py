"""TOTP enrolment, step-up and recovery codes (SPEC §7)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from .. import state
from ..accounts import principal_user
from ..audit import audit
from ..auth.cookies import set_access_cookie
from ..config import STEP_UP_MAX_AGE
from ..core import mfa as mfa_service
from ..extensions import db
from ..http import load_json
from ..models import AuthSession, User
from ..ratelimit import STEP_UP
from ..route_facts import route_facts
from ..security import current_principal
from ..security.guards import require_auth, require_mfa
from ..security.issuing import access_token_for
from . import flows
from .schemas import (
    CodeSchema,
    ConfirmSchema,
    EnrollmentSchema,
    MfaStateSchema,
    RecoveryCodesSchema,
    SteppedUpSchema,
)

bp = Blueprint("mfa", __name__, url_prefix="/mfa")


def stepped_up_response(user: User, sess: AuthSession) -> Response:
    """A step-up's answer (by code or passkey): the new aal2 access token, also as the cookie."""
    token, claims = access_token_for(user, sess)
    response = jsonify(access_token=token, token_type="Bearer",
                       expires_in=claims["exp"] - claims["iat"])
    set_access_cookie(response, token)
    return response


@bp.post("/totp/enroll")
@route_facts(response=EnrollmentSchema)
@require_auth
def enroll() -> Response:
    """A new pending secret, its otpauth:// URI and a QR code (SVG); shown once."""
    enrollment = flows.begin_enrollment(current_principal())
    response = jsonify(secret=enrollment.secret, otpauth_uri=enrollment.uri,
                       qr_svg=enrollment.qr_svg)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/totp/confirm")
@route_facts(body=ConfirmSchema, response=RecoveryCodesSchema)
@require_auth
def confirm() -> Response:
    """Switch MFA on with the current password and a valid code; returns 10 single-use
    recovery codes, once."""
    body = load_json(ConfirmSchema())
    response = jsonify(recovery_codes=flows.confirm_enrollment(
        current_principal(), body["current_password"], body["code"]))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/step-up")
@route_facts(body=CodeSchema, response=SteppedUpSchema, limits=(STEP_UP,), limited_in_view=True)
@require_auth
def step_up() -> Response:
    """A TOTP or recovery code gives a new aal2 access token with a fresh auth_time."""
    body = load_json(CodeSchema())
    return stepped_up_response(*flows.step_up(current_principal(), body["code"]))


@bp.post("/totp/disable")
@route_facts(response=MfaStateSchema)
@require_mfa(max_age=STEP_UP_MAX_AGE)
def disable() -> Response:
    """Turn MFA off (needs a recent step-up)."""
    user = principal_user(current_principal())
    mfa_service.disable(db.session(), user.id)
    audit("MFA_DISABLED", user_id=user.id)
    return jsonify(mfa_enabled=False)


@bp.post("/recovery-codes")
@route_facts(response=RecoveryCodesSchema)
@require_mfa(max_age=STEP_UP_MAX_AGE)
def regenerate_recovery_codes() -> Response:
    """Ten new recovery codes; the old ones stop working (needs a recent step-up)."""
    user = principal_user(current_principal())
    codes = mfa_service.regenerate_recovery_codes(db.session(), user.id, state.now())
    response = jsonify(recovery_codes=codes)
    response.headers["Cache-Control"] = "no-store"
    return response
