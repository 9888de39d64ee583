"""Answers of the RFC 7662 introspection and RFC 7009 revocation endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields


class IntrospectionSchema(Schema):
    """RFC 7662 §2.2: ``active`` always; the rest only for an active token."""

    active = fields.Boolean(required=True)
    token_type = fields.String()
    scope = fields.String()
    client_id = fields.String()
    username = fields.String(allow_none=True)
    sub = fields.String()
    exp = fields.Integer()
    iat = fields.Integer()
    nbf = fields.Integer()
    aud = fields.Raw(metadata={"oneOf": [{"type": "string"},
                                         {"type": "array", "items": {"type": "string"}}]})
    iss = fields.String()
    jti = fields.String()
    sid = fields.String()
    acr = fields.String()
    amr = fields.List(fields.String())
    auth_time = fields.Integer()


class RevokedSchema(Schema):
    """RFC 7009 §2.2: an empty object, whether or not the token was known."""
