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


# Answers (see app.route_facts; tests/ops/test_responses_match_openapi.py checks them).


class PasskeyOptionsSchema(Schema):
    """What ``navigator.credentials.create()``/``get()`` needs (WebAuthn Level 3 JSON)."""

    publicKey = fields.Dict(keys=fields.String(), required=True)  # WebAuthn's name


class PasskeyOutSchema(Schema):
    """A passkey as its owner or an admin sees it: never the key or its credential id."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["swk", "hwk"]))
    transports = fields.List(fields.String(), required=True)
    created_at = fields.String(required=True)
    last_used_at = fields.String(required=True, allow_none=True)


class PasskeysSchema(Schema):
    passkeys = fields.List(fields.Nested(PasskeyOutSchema), required=True)


class PasskeyRenamedSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class PasskeyRemovedSchema(Schema):
    removed = fields.Boolean(required=True)
    id = fields.Integer(required=True)


class PageRedirectSchema(Schema):
    """The login page's passkey step: where the page goes next (its cookies are set)."""

    redirect = fields.String(required=True)
