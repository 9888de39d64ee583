"""Bodies and query strings of the admin API."""

from __future__ import annotations

from datetime import UTC

from marshmallow import Schema, fields, validate

from ..models.base import MAX_INTEGER_ID

_ROLE = fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_:-]{0,31}$"))


class UserCreateSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=2, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    roles = fields.List(_ROLE, load_default=list, validate=validate.Length(max=16))
    # The password is one the admin passes on: the first login must replace it.
    temporary = fields.Boolean(load_default=False)


class TemporaryPasswordSchema(Schema):
    # Left out: a generated password, returned once.
    password = fields.String(load_default=None, validate=validate.Length(min=1, max=256))


class UserUpdateSchema(Schema):
    disabled = fields.Boolean()
    roles = fields.List(_ROLE, validate=validate.Length(max=16))


class UserQuerySchema(Schema):
    """Keyset paging: ``after_id`` is the last id of the previous page (never an OFFSET)."""

    q = fields.String(load_default=None, validate=validate.Length(max=64))
    after_id = fields.Integer(load_default=None,
                              validate=validate.Range(min=0, max=MAX_INTEGER_ID))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class TokenRevokeSchema(Schema):
    jti = fields.String(required=True, validate=validate.Length(min=1, max=128))


class RotateSchema(Schema):
    force = fields.Boolean(load_default=False)


class PhaseSchema(Schema):
    phase = fields.String(required=True,
                          validate=validate.OneOf(["legacy", "dual", "asymmetric"]))


class AuditQuerySchema(Schema):
    user_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INTEGER_ID))
    event = fields.String(load_default=None, validate=validate.Length(max=40))
    since = fields.AwareDateTime(load_default=None, default_timezone=UTC)
    until = fields.AwareDateTime(load_default=None, default_timezone=UTC)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    before_id = fields.Integer(load_default=None,
                               validate=validate.Range(min=1, max=MAX_INTEGER_ID))


_CLIENT_SCOPE = fields.String(validate=validate.OneOf(["introspect", "revoke", "events"]))


class ClientCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9 ._-]{1,128}$"))
    scopes = fields.List(_CLIENT_SCOPE, load_default=lambda: ["introspect", "revoke"],
                         validate=validate.Length(min=1, max=3))


class ClientUpdateSchema(Schema):
    scopes = fields.List(_CLIENT_SCOPE, required=True, validate=validate.Length(min=1, max=3))
