"""Registered service clients (resource servers): their hashed secrets, scopes and
secret rotation with an overlap.

A rotation keeps the previous secret's hash until ``now + overlap``, so the
services holding it can be redeployed with the new one without an outage; a
second rotation inside the overlap replaces the previous secret at once (only
the last two secrets are ever valid). Scopes name the endpoints a client may
call: ``introspect`` (RFC 7662), ``revoke`` (RFC 7009) and ``events`` (the
security-event stream, RFC 8936).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import ServiceClient
from .errors import CoreError
from .passwords import hash_password, verify_password

__all__ = [
    "CLIENT_SCOPES",
    "DEFAULT_CLIENT_SCOPES",
    "ClientError",
    "UnknownClient",
    "authenticate_client",
    "create_client",
    "delete_client",
    "list_clients",
    "rotate_secret",
    "set_scopes",
]

CLIENT_SCOPES = ("introspect", "revoke", "events")
# Receiving every revocation (the event stream) is asked for, never given by default.
DEFAULT_CLIENT_SCOPES = ("introspect", "revoke")
_NAME = re.compile(r"[A-Za-z0-9 ._-]{1,128}")


class ClientError(CoreError, ValueError):
    """A client cannot be created or changed as asked (``field``: the bad input)."""

    code = "invalid_client"
    field: str | None = "scopes"


class UnknownClient(ClientError):
    code = "unknown_client"
    field: str | None = None


def _scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes))
    unknown = [s for s in chosen if s not in CLIENT_SCOPES]
    if unknown or not chosen:
        raise ClientError(f"scopes: one or more of {', '.join(CLIENT_SCOPES)}")
    return chosen


def create_client(session: Session, name: str, now: datetime,
                  scopes: Iterable[str] = DEFAULT_CLIENT_SCOPES) -> tuple[ServiceClient, str]:
    """Register a client; returns it and its secret, which is shown once and stored hashed."""
    if not _NAME.fullmatch(name):
        raise ClientError("name: 1-128 letters, digits, spaces, . _ -", field="name")
    secret = secrets.token_urlsafe(32)
    client = ServiceClient(client_id="svc-" + secrets.token_urlsafe(12), name=name,
                           secret_hash=hash_password(secret), created_at=now,
                           scopes=_scopes(scopes))
    session.add(client)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ClientError("client id collision; try again") from None
    return client, secret


def list_clients(session: Session) -> list[ServiceClient]:
    """Every client, oldest first."""
    return list(session.scalars(select(ServiceClient).order_by(ServiceClient.created_at,
                                                               ServiceClient.client_id)))


def _get(session: Session, client_id: str) -> ServiceClient:
    client = session.get(ServiceClient, client_id)
    if client is None:
        raise UnknownClient(f"no client {client_id}")
    return client


def rotate_secret(session: Session, client_id: str, now: datetime,
                  overlap: timedelta) -> tuple[ServiceClient, str]:
    """A new secret (returned once); the current one stays valid until ``now + overlap``."""
    client = _get(session, client_id)
    secret = secrets.token_urlsafe(32)
    client.previous_secret_hash = client.secret_hash if overlap > timedelta(0) else None
    client.previous_secret_expires_at = now + overlap if overlap > timedelta(0) else None
    client.secret_hash = hash_password(secret)
    client.secret_rotated_at = now
    session.commit()
    return client, secret


def set_scopes(session: Session, client_id: str, scopes: Iterable[str]) -> ServiceClient:
    """Replace what the client may call (at least one scope)."""
    client = _get(session, client_id)
    client.scopes = _scopes(scopes)
    session.commit()
    return client


def delete_client(session: Session, client_id: str) -> ServiceClient:
    """Remove the client: its secrets stop working at once."""
    client = _get(session, client_id)
    session.delete(client)
    session.commit()
    return client


def authenticate_client(client: ServiceClient, secret: str, now: datetime) -> bool:
    """Whether ``secret`` is this client's current secret, or its previous one during the
    overlap after a rotation (argon2 verification)."""
    if verify_password(client.secret_hash, secret):
        return True
    expires = client.previous_secret_expires_at
    return (client.previous_secret_hash is not None and expires is not None and now < expires
            and verify_password(client.previous_secret_hash, secret))
