"""Helpers that mint tokens and users the way the service does, for tests."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from flask import Flask

from app import state
from app.core.tokens import access_claims, sign_token
from app.core.users import create_user
from app.extensions import db
from app.security import snapshot

PASSWORD = "correct horse battery staple"


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")))


def make_user(app: Flask, username: str = "alice", roles: tuple[str, ...] = ()) -> int:
    """Create a user and return its id."""
    with app.app_context():
        return create_user(db.session, username, PASSWORD, roles, state.now()).id


def claims_for(app: Flask, user_id: int, **overrides: Any) -> dict[str, Any]:
    """A full, valid claim set for ``user_id`` at the app's current time."""
    with app.app_context():
        s = state.settings()
        now = int(state.now().timestamp())
        claims = access_claims(
            issuer=s.issuer, audience=s.access_audience, user_id=user_id, session_id="sid-test",
            client_id="web", scope="notes:read notes:write", roles=[], auth_time=now,
            amr=["pwd"], acr="aal1", now=now, ttl=int(s.access_token_ttl.total_seconds()),
        )
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}  # `...` deletes a claim


def issue(app: Flask, user_id: int, **overrides: Any) -> str:
    """A token signed by the app's current signer (ES256 active key, or HS256 in legacy phase)."""
    with app.app_context():
        signer = snapshot().current_signer()
        assert signer is not None
        return sign_token(signer, claims_for(app, user_id, **overrides))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wall_clock() -> int:
    return int(time.time())
