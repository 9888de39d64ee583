"""Bodies of the protected resources."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class NoteSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    body = fields.String(load_default="", validate=validate.Length(max=10_000))
