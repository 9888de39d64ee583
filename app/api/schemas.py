"""Bodies of the protected resources."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class NoteSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    body = fields.String(load_default="", validate=validate.Length(max=10_000))


# Answers (see app.route_facts).


class MeSchema(Schema):
    sub = fields.String(required=True)
    username = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    scope = fields.String(required=True)
    sid = fields.String(required=True, allow_none=True)
    acr = fields.String(required=True)
    amr = fields.List(fields.String(), required=True)
    auth_time = fields.Integer(required=True, allow_none=True)
    legacy = fields.Boolean(required=True)


class NoteOutSchema(Schema):
    id = fields.Integer(required=True)
    title = fields.String(required=True)
    body = fields.String(required=True)
    created_at = fields.String(required=True)


class NotesSchema(Schema):
    notes = fields.List(fields.Nested(NoteOutSchema), required=True)


class DeletedNoteSchema(Schema):
    deleted = fields.Integer(required=True)


class _ExportUserSchema(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    created_at = fields.String(required=True)


class _ExportSessionSchema(Schema):
    id = fields.String(required=True)
    created_at = fields.String(required=True)
    ip = fields.String(required=True, allow_none=True)
    user_agent = fields.String(required=True, allow_none=True)


class ExportSchema(Schema):
    user = fields.Nested(_ExportUserSchema, required=True)
    notes = fields.List(fields.Nested(NoteOutSchema), required=True)
    sessions = fields.List(fields.Nested(_ExportSessionSchema), required=True)
