"""Answers of the discovery routes (RFC 7517, RFC 8414, RFC 9728)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..config import MIGRATION_PHASES


def _strings() -> fields.List[str]:
    return fields.List(fields.String(), required=True)


class JwkSchema(Schema):
    """One public key (RFC 7517 §4); the members depend on ``kty``."""

    kty = fields.String(required=True)
    kid = fields.String(required=True)
    alg = fields.String()
    use = fields.String()
    crv = fields.String()
    x = fields.String()
    y = fields.String()
    n = fields.String()
    e = fields.String()


class JwksSchema(Schema):
    keys = fields.List(fields.Nested(JwkSchema), required=True)


class MigrationMemberSchema(Schema):
    """``tessera_migration``: the HS256 phase and sunset verifiers follow (SPEC §4)."""

    phase = fields.String(required=True, validate=validate.OneOf(MIGRATION_PHASES))
    legacy_accepted = fields.Boolean(required=True)
    legacy_sunset = fields.Float(required=True, allow_none=True)  # epoch seconds


class AuthorizationServerSchema(Schema):
    issuer = fields.String(required=True)
    jwks_uri = fields.String(required=True)
    revocation_endpoint = fields.String(required=True)
    introspection_endpoint = fields.String(required=True)
    revocation_endpoint_auth_methods_supported = _strings()
    introspection_endpoint_auth_methods_supported = _strings()
    response_types_supported = _strings()
    grant_types_supported = _strings()
    scopes_supported = _strings()
    acr_values_supported = _strings()
    tessera_migration = fields.Nested(MigrationMemberSchema, required=True)


class ProtectedResourceSchema(Schema):
    resource = fields.String(required=True)
    authorization_servers = _strings()
    jwks_uri = fields.String(required=True)
    bearer_methods_supported = _strings()
    scopes_supported = _strings()
    resource_signing_alg_values_supported = _strings()
