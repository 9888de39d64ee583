"""Bodies of the MFA area."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..auth.schemas import PASSWORD_LENGTH


class CodeSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))


class ConfirmSchema(CodeSchema):
    """Turning MFA on proves the password: a stolen access token alone cannot (issue 16)."""

    current_password = fields.String(required=True, validate=PASSWORD_LENGTH)
