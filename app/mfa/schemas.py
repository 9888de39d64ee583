"""Bodies of the MFA area."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class CodeSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
