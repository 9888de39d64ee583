"""Registered service clients (resource servers) and their hashed secrets."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.passwords import hash_password, verify_password
from app.models import ServiceClient

__all__ = ["ClientError", "authenticate_client", "create_client"]

_NAME = re.compile(r"[A-Za-z0-9 ._-]{1,128}")


class ClientError(ValueError):
    """A client cannot be created as asked."""


def create_client(session: Session, name: str, now: datetime) -> tuple[ServiceClient, str]:
    """Register a client; returns it and its secret, which is shown once and stored hashed."""
    if not _NAME.fullmatch(name):
        raise ClientError("name: 1-128 letters, digits, spaces, . _ -")
    secret = secrets.token_urlsafe(32)
    client = ServiceClient(client_id="svc-" + secrets.token_urlsafe(12), name=name,
                           secret_hash=hash_password(secret), created_at=now)
    session.add(client)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ClientError("client id collision; try again") from None
    return client, secret


def authenticate_client(client: ServiceClient, secret: str) -> bool:
    """Whether ``secret`` is this client's (argon2 verification)."""
    return verify_password(client.secret_hash, secret)
