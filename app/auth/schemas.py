"""Request bodies of the auth area; unknown fields are refused (marshmallow's RAISE)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

_USERNAME = fields.String(required=True, validate=validate.Length(min=1, max=64))
PASSWORD_LENGTH = validate.Length(min=1, max=256)


class LoginSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=PASSWORD_LENGTH)


class RegisterSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=2, max=64))
    password = fields.String(required=True, validate=PASSWORD_LENGTH)


class PasswordChangeSchema(Schema):
    current_password = fields.String(required=True, validate=PASSWORD_LENGTH)
    new_password = fields.String(required=True, validate=PASSWORD_LENGTH)


class ReplaceTemporaryPasswordSchema(Schema):
    password_change_token = fields.String(required=True,
                                          validate=validate.Length(min=1, max=4096))
    new_password = fields.String(required=True, validate=PASSWORD_LENGTH)


class MfaVerifySchema(Schema):
    mfa_token = fields.String(required=True, validate=validate.Length(min=1, max=4096))
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))


class EmptySchema(Schema):
    """Routes that take no body still refuse unknown fields when one is sent."""
