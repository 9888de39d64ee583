"""The stream poll's body (RFC 8936 §2.4); unknown fields are refused."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

_JTI = fields.String(validate=validate.Length(min=1, max=128))


class SetErrorSchema(Schema):
    err = fields.String(required=True, validate=validate.Length(min=1, max=64))
    description = fields.String(validate=validate.Length(max=512))


class PollSchema(Schema):
    """``maxEvents`` 0 acknowledges only; absent: the server's batch size."""

    max_events = fields.Integer(data_key="maxEvents", load_default=None,
                                validate=validate.Range(min=0, max=10_000), strict=True)
    return_immediately = fields.Boolean(data_key="returnImmediately", load_default=False,
                                        truthy={True}, falsy={False})
    ack = fields.List(_JTI, load_default=list, validate=validate.Length(max=10_000))
    set_errs = fields.Dict(keys=_JTI, values=fields.Nested(SetErrorSchema), data_key="setErrs",
                           load_default=dict, validate=validate.Length(max=10_000))
