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


# Answers (documented in the OpenAPI; tests/ops/test_responses_match_openapi.py checks
# real answers against them).


class SessionIssuedSchema(Schema):
    """A new or refreshed session: the access token (also set as a cookie)."""

    access_token = fields.String(required=True)
    token_type = fields.String(required=True, validate=validate.Equal("Bearer"))
    expires_in = fields.Integer(required=True)
    session_id = fields.String(required=True)


class MfaRequiredSchema(Schema):
    """The password was right; the second step needs ``mfa_token``."""

    mfa_required = fields.Boolean(required=True)
    mfa_token = fields.String(required=True)


class PasswordChangeRequiredSchema(Schema):
    """A temporary password: the login ends with POST /auth/password/temporary."""

    password_change_required = fields.Boolean(required=True)
    password_change_token = fields.String(required=True)


class RegisteredSchema(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)


class LoggedOutSchema(Schema):
    logged_out = fields.Boolean(required=True)


class OwnSessionSchema(Schema):
    id = fields.String(required=True)
    client_id = fields.String(required=True)
    created_at = fields.String(required=True)
    last_used_at = fields.String(required=True)
    expires_at = fields.String(required=True)
    user_agent = fields.String(required=True, allow_none=True)
    device = fields.String(required=True)
    ip = fields.String(required=True, allow_none=True)
    acr = fields.String(required=True)
    current = fields.Boolean(required=True)


class OwnSessionsSchema(Schema):
    sessions = fields.List(fields.Nested(OwnSessionSchema), required=True)


class EndedSchema(Schema):
    ended = fields.String(required=True)


class PasswordChangedSchema(Schema):
    changed = fields.Boolean(required=True)
