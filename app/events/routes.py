"""The security-event stream's routes: SSF metadata, stream configuration, RFC 8936 poll.

The stream routes authenticate a registered service client with HTTP Basic and
need its ``events`` scope (``flask clients create NAME --scope events``): their
facts say ``public`` (no user token) and ``client_basic`` (documented with the
HTTP Basic client scheme).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..http import load_json
from ..ratelimit import EVENTS
from ..route_facts import route_facts
from . import feed
from .schemas import PollAnswerSchema, PollSchema, StreamSchema, TransmitterSchema

bp = Blueprint("events", __name__)


@bp.get("/.well-known/ssf-configuration")
@route_facts(response=TransmitterSchema, public=True)
def ssf_configuration() -> Response:
    """The transmitter's Shared Signals metadata."""
    response = jsonify(feed.transmitter_metadata())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/ssf/stream")
@route_facts(response=StreamSchema, public=True, client_basic=True, limits=(EVENTS,))
def stream() -> Response:
    """The calling receiver's stream configuration."""
    return jsonify(feed.stream_configuration(feed.authenticated_receiver()))


@bp.post("/ssf/poll")
@route_facts(body=PollSchema, response=PollAnswerSchema, public=True, client_basic=True,
             limits=(EVENTS,))
def poll() -> Response:
    """Acknowledge SETs and receive the next ones (RFC 8936 polling, long-poll allowed)."""
    client_id = feed.authenticated_receiver()
    body = feed.Poll(**load_json(PollSchema()))
    response = jsonify(feed.poll(client_id, body))
    response.headers["Cache-Control"] = "no-store"
    return response
