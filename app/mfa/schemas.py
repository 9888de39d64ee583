"""Bodies of the MFA area."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..auth.schemas import PASSWORD_LENGTH


class CodeSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))


class ConfirmSchema(CodeSchema):
    """Turning MFA on proves the password: a stolen access token alone cannot (issue 16)."""

    current_password = fields.String(required=True, validate=PASSWORD_LENGTH)


# Answers (see app.route_facts).


class EnrollmentSchema(Schema):
    secret = fields.String(required=True)
    otpauth_uri = fields.String(required=True)
    qr_svg = fields.String(required=True)


class RecoveryCodesSchema(Schema):
    recovery_codes = fields.List(fields.String(), required=True)


class SteppedUpSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, validate=validate.Equal("Bearer"))
    expires_in = fields.Integer(required=True)


class MfaStateSchema(Schema):
    mfa_enabled = fields.Boolean(required=True)
