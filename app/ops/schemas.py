"""Answers of the operations routes."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

_CHECK = validate.OneOf(["ok", "down", "missing", "unknown", "not_configured"])


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.Equal("ok"))


class _ChecksSchema(Schema):
    database = fields.String(required=True, validate=_CHECK)
    redis = fields.String(required=True, validate=_CHECK)
    signing_key = fields.String(required=True, validate=_CHECK)


class ReadySchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]))
    checks = fields.Nested(_ChecksSchema, required=True)


class OpenApiDocumentSchema(Schema):
    """This document itself (OpenAPI 3.1): only its top level is described."""

    openapi = fields.String(required=True)
    info = fields.Dict(required=True)
    paths = fields.Dict(required=True)
    components = fields.Dict()
