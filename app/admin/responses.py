"""Answers of the admin API, as documented in the OpenAPI (see app.route_facts)."""

from __future__ import annotations

from marshmallow import Schema, fields

from ..mfa.passkey_schemas import PasskeyOutSchema


def _nullable() -> fields.String:
    """A string always present, possibly null (an ISO 8601 time, an optional name)."""
    return fields.String(required=True, allow_none=True)


class UserOutSchema(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    disabled = fields.Boolean(required=True)
    created_at = fields.String(required=True)
    password_change_required = fields.Boolean(required=True)
    mfa_enabled = fields.Boolean(required=True)


class UserPageSchema(Schema):
    users = fields.List(fields.Nested(UserOutSchema), required=True)
    next_after_id = fields.Integer(required=True, allow_none=True)


class MfaResetSchema(Schema):
    user_id = fields.Integer(required=True)
    mfa_was_enabled = fields.Boolean(required=True)
    mfa_enabled = fields.Boolean(required=True)


class TemporaryPasswordSetSchema(Schema):
    user_id = fields.Integer(required=True)
    temporary_password = fields.String(required=True)
    password_change_required = fields.Boolean(required=True)


class UserTokensRevokedSchema(Schema):
    revoked = fields.Boolean(required=True)
    user_id = fields.Integer(required=True)


class AdminSessionSchema(Schema):
    id = fields.String(required=True)
    user_id = fields.Integer(required=True)
    client_id = fields.String(required=True)
    created_at = fields.String(required=True)
    last_used_at = fields.String(required=True)
    ip = fields.String(required=True, allow_none=True)
    user_agent = fields.String(required=True, allow_none=True)
    device = fields.String(required=True)
    acr = fields.String(required=True)


class AdminSessionsSchema(Schema):
    sessions = fields.List(fields.Nested(AdminSessionSchema), required=True)


class SessionEndedSchema(Schema):
    ended = fields.String(required=True)


class TokenRevokedSchema(Schema):
    revoked = fields.String(required=True)


class KeyOutSchema(Schema):
    kid = fields.String(required=True)
    alg = fields.String(required=True)
    state = fields.String(required=True)
    created_at = _nullable()
    activated_at = _nullable()
    retired_at = _nullable()
    expired_at = _nullable()
    revoked_at = _nullable()
    # Only in the key list (GET /keys), which describes each key's schedule too.
    age_seconds = fields.Integer()
    rotation_due_at = fields.String(allow_none=True)
    rotation_overdue = fields.Boolean()
    expires_at = fields.String(allow_none=True)
    published = fields.Boolean()


class KeyListSchema(Schema):
    keys = fields.List(fields.Nested(KeyOutSchema), required=True)
    jwks_kids = fields.List(fields.String(), required=True)


class RotatedSchema(Schema):
    active_kid = _nullable()
    retired_kid = _nullable()
    standby_kid = _nullable()


class _LegacyDaySchema(Schema):
    day = fields.String(required=True)
    count = fields.Integer(required=True)


class MigrationSchema(Schema):
    phase = fields.String(required=True)
    signing_alg = _nullable()
    legacy_accepted = fields.Boolean(required=True)
    note = _nullable()
    legacy_accept_until = _nullable()
    legacy_usage = fields.List(fields.Nested(_LegacyDaySchema), required=True)
    last_legacy_token_at = _nullable()


class _TrafficDaySchema(Schema):
    day = fields.String(required=True)
    hs256_accepted = fields.Integer(required=True)
    hs256_exchanged = fields.Integer(required=True)
    tokens_issued = fields.Integer(required=True)


class TrafficSchema(Schema):
    legacy_accept_until = _nullable()
    days = fields.List(fields.Nested(_TrafficDaySchema), required=True)


class AuditEventSchema(Schema):
    id = fields.Integer(required=True)
    at = fields.String(required=True)
    event = fields.String(required=True)
    user_id = fields.Integer(required=True, allow_none=True)
    actor_id = fields.Integer(required=True, allow_none=True)
    session_id = _nullable()
    request_id = _nullable()
    ip = _nullable()
    user_agent = _nullable()
    result = fields.String(required=True)
    reason = _nullable()
    kid = _nullable()
    details = fields.Dict(required=True, allow_none=True)


class AuditPageSchema(Schema):
    events = fields.List(fields.Nested(AuditEventSchema), required=True)
    next_before_id = fields.Integer(required=True, allow_none=True)


class ClientOutSchema(Schema):
    client_id = fields.String(required=True)
    name = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True)
    created_at = _nullable()
    secret_rotated_at = _nullable()
    previous_secret_valid_until = _nullable()


class ClientWithSecretSchema(ClientOutSchema):
    """The only answer that holds the secret (Cache-Control: no-store)."""

    client_secret = fields.String(required=True)


class ClientListSchema(Schema):
    clients = fields.List(fields.Nested(ClientOutSchema), required=True)


class ClientDeletedSchema(Schema):
    deleted = fields.String(required=True)


class UserPasskeysSchema(Schema):
    user_id = fields.Integer(required=True)
    passkeys = fields.List(fields.Nested(PasskeyOutSchema), required=True)
