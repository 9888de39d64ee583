"""The stream poll's body (RFC 8936 §2.4; unknown fields are refused) and the answers."""

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


# Answers (see app.route_facts; tests/ops/test_responses_match_openapi.py checks them).


def _strings() -> fields.List[str]:
    return fields.List(fields.String(), required=True)


class PollAnswerSchema(Schema):
    """RFC 8936 §2.4: the SETs by ``jti`` (each a compact JWS) and whether more wait."""

    sets = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    more_available = fields.Boolean(data_key="moreAvailable", required=True)


class DeliverySchema(Schema):
    method = fields.String(required=True)
    endpoint_url = fields.String(required=True)


class StreamSchema(Schema):
    """The receiver's stream configuration (SSF §8.1.1)."""

    stream_id = fields.String(required=True)
    iss = fields.String(required=True)
    aud = fields.String(required=True)
    events_supported = _strings()
    events_requested = _strings()
    events_delivered = _strings()
    delivery = fields.Nested(DeliverySchema, required=True)
    description = fields.String(required=True)


class AuthorizationSchemeSchema(Schema):
    spec_urn = fields.String(required=True)


class TransmitterSchema(Schema):
    """The transmitter's metadata (SSF §7.1)."""

    spec_version = fields.String(required=True)
    issuer = fields.String(required=True)
    jwks_uri = fields.String(required=True)
    delivery_methods_supported = _strings()
    configuration_endpoint = fields.String(required=True)
    authorization_schemes = fields.List(fields.Nested(AuthorizationSchemeSchema), required=True)
    default_subjects = fields.String(required=True)
