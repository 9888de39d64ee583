"""Bodies of the passkey routes (issue 22)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..auth.schemas import PASSWORD_LENGTH

NAME_LENGTH = validate.Length(min=1, max=64)


class PasskeyRegisterOptionsSchema(Schema):
    """A user without a second factor proves the password; one with it, a recent step-up."""

    current_password = fields.String(load_default=None, validate=PASSWORD_LENGTH)


class PasskeyCredentialSchema(Schema):
    """The browser's PublicKeyCredential, as its ``toJSON()`` gives it (WebAuthn Level 3)."""

    credential = fields.Dict(keys=fields.String(), required=True)


class PasskeyRegisterSchema(PasskeyCredentialSchema):
    name = fields.String(load_default="Passkey", validate=NAME_LENGTH)


class PasskeyRenameSchema(Schema):
    name = fields.String(required=True, validate=NAME_LENGTH)


class PasskeyLoginOptionsSchema(Schema):
    mfa_token = fields.String(required=True, validate=validate.Length(min=1, max=4096))


class PasskeyLoginSchema(PasskeyCredentialSchema, PasskeyLoginOptionsSchema):
    """The login's mfa_token and the passkey's answer."""
