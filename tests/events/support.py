"""Helpers for the security-event feed's tests: a receiver client and its polls."""

from __future__ import annotations

import base64
from typing import Any

from flask import Flask
from werkzeug.test import TestResponse

from app.core.clients import create_client
from app.extensions import db


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic client authentication (RFC 6749 §2.3.1)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def make_receiver(app: Flask, scopes: tuple[str, ...] = ("events",)) -> tuple[str, str]:
    """A registered service client with the ``events`` scope: (client id, secret)."""
    with app.app_context():
        client, secret = create_client(db.session(), "receiver", app.extensions[
            "tessera.clock"](), scopes)
        return client.client_id, secret


def poll(app: Flask, creds: tuple[str, str], **body: Any) -> TestResponse:
    """One poll; returns at once unless ``returnImmediately=False`` is given."""
    body.setdefault("returnImmediately", True)
    return app.test_client().post("/ssf/poll", json=body, headers=basic(*creds))
