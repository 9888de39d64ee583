"""The admin API's service clients of /oauth/introspect and /oauth/revoke (SPEC §8)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from .. import state
from ..core import clients as client_service
from ..extensions import db
from ..http import load_json
from ..models import ServiceClient
from ..route_facts import route_facts
from . import actions
from .responses import (
    ClientDeletedSchema,
    ClientListSchema,
    ClientOutSchema,
    ClientWithSecretSchema,
)
from .routes import bp
from .schemas import ClientCreateSchema, ClientUpdateSchema


def _client_json(client: ServiceClient) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    previous_until = client.previous_secret_expires_at
    if previous_until is not None and previous_until <= state.now():
        previous_until = None  # the overlap is over: only the current secret works
    return {"client_id": client.client_id, "name": client.name, "scopes": client.scopes,
            "created_at": when(client.created_at),
            "secret_rotated_at": when(client.secret_rotated_at),
            "previous_secret_valid_until": when(previous_until)}


@bp.get("/clients")
@route_facts(response=ClientListSchema)
def list_clients() -> Response:
    """Service clients of /oauth/introspect and /oauth/revoke (never their secrets)."""
    return jsonify(clients=[_client_json(c) for c in client_service.list_clients(db.session())])


def _with_secret(client: ServiceClient, secret: str) -> Response:
    response = jsonify(**_client_json(client), client_secret=secret)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/clients")
@route_facts(body=ClientCreateSchema, response=ClientWithSecretSchema, status=201)
def create_client() -> tuple[Response, int]:
    """Register a client; its secret is in this answer only."""
    body = load_json(ClientCreateSchema())
    return _with_secret(*actions.create_client(body["name"], body["scopes"])), 201


@bp.post("/clients/<client_id>/rotate-secret")
@route_facts(response=ClientWithSecretSchema)
def rotate_client_secret(client_id: str) -> Response:
    """A new secret (in this answer only); the old one works for CLIENT_SECRET_OVERLAP."""
    return _with_secret(*actions.rotate_client_secret(client_id))


@bp.patch("/clients/<client_id>")
@route_facts(body=ClientUpdateSchema, response=ClientOutSchema)
def update_client(client_id: str) -> Response:
    """Set the client's scopes."""
    body = load_json(ClientUpdateSchema())
    return jsonify(_client_json(actions.set_client_scopes(client_id, body["scopes"])))


@bp.delete("/clients/<client_id>")
@route_facts(response=ClientDeletedSchema)
def delete_client(client_id: str) -> Response:
    """Remove the client; its secrets stop working at once."""
    actions.delete_client(client_id)
    return jsonify(deleted=client_id)
