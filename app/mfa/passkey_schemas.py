"""Bodies of the passkey routes (issue 22)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..auth.schemas import PASSWORD_LENGTH

NAME_LENGTH = validate.Length(min=1, max=64)


class RegisterOptionsSchema(Schema):
    """A user without a second factor proves the password; one with it, a recent step-up."""

    current_password = fields.String(load_default=None, validate=PASSWORD_LENGTH)


class CredentialSchema(Schema):
    """The browser's PublicKeyCredential, as its ``toJSON()`` gives it (WebAuthn Level 3)."""

    credential = fields.Dict(keys=fields.String(), required=True)


class RegisterSchema(CredentialSchema):
    name = fields.String(load_default="Passkey", validate=NAME_LENGTH)


class RenameSchema(Schema):
    name = fields.String(required=True, validate=NAME_LENGTH)


class LoginOptionsSchema(Schema):
    mfa_token = fields.String(required=True, validate=validate.Length(min=1, max=4096))


class LoginSchema(CredentialSchema, LoginOptionsSchema):
    """The login's mfa_token and the passkey's answer."""
