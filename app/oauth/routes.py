"""RFC 7009 and RFC 7662 endpoints built with Authlib (SPEC §9).

Service clients authenticate with ``client_secret_basic`` or
``client_secret_post``. Introspection runs the full verification of SPEC §3,
revocation included, so a revoked, expired or forged token is simply
``{"active": false}``. Revoking a refresh token ends its session (and so
every access token of it), as RFC 7009 §2.1 recommends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import UnauthorizedClientError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, Flask, Response, current_app
from sqlalchemy import select

from .. import state
from ..core.clients import authenticate_client
from ..core.crypto import sha256_hex
from ..core.tokens import VerifiedToken
from ..extensions import db
from ..models import AuthSession, RefreshToken, ServiceClient, User
from ..route_facts import route_facts
from ..security import inspect_access_token
from ..security.issuing import session_limits
from ..security.revocation import revocations, revoke_session
from .schemas import IntrospectionSchema, RevokedSchema

bp = Blueprint("oauth", __name__, url_prefix="/oauth")
_EXT = "tessera.oauth"
_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class _Client:
    """Authlib's view of a registered service client."""

    def __init__(self, row: ServiceClient) -> None:
        self.row = row
        self.client_id = row.client_id

    def get_client_id(self) -> str:
        return self.client_id

    def check_client_secret(self, secret: str) -> bool:
        return authenticate_client(self.row, secret, state.now())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in _AUTH_METHODS


@dataclass
class _Token:
    """Authlib's view of a token we found: an access token or a refresh token's session."""

    access: VerifiedToken | None = None
    session: AuthSession | None = None

    def check_client(self, client: Any) -> bool:
        return True  # every registered resource server may revoke what it is shown

    def is_expired(self) -> bool:
        return False  # expiry is part of the verification that found it

    def is_revoked(self) -> bool:
        return False


def _query_client(client_id: str) -> _Client | None:
    row = db.session.get(ServiceClient, client_id)
    return _Client(row) if row is not None else None


def _find(token_string: str, hint: str | None) -> _Token | None:
    order = ("refresh", "access") if hint == "refresh_token" else ("access", "refresh")
    for kind in order:
        found = _find_access(token_string) if kind == "access" else _find_refresh(token_string)
        if found is not None:
            return found
    return None


def _find_access(token_string: str) -> _Token | None:
    verified = inspect_access_token(token_string)
    return _Token(access=verified) if verified is not None else None


def _find_refresh(token_string: str) -> _Token | None:
    row = db.session.scalars(select(RefreshToken).where(
        RefreshToken.token_hash == sha256_hex(token_string))).first()
    if row is None or row.consumed_at is not None:
        return None
    sess = db.session.get(AuthSession, row.session_id)
    now = state.now()
    limits = session_limits()
    if sess is None or sess.revoked_at is not None or now >= sess.expires_at \
            or now - sess.last_used_at >= limits.idle_timeout:
        return None
    return _Token(session=sess)


def _require_scope(client: _Client, scope: str) -> None:
    """A client may call only the endpoints its scopes name (400 unauthorized_client)."""
    if scope not in client.row.scopes:
        raise UnauthorizedClientError(description=f"this client lacks the scope {scope}")


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = _AUTH_METHODS

    def authenticate_token(self, request: Any, client: _Client) -> _Token | None:
        _require_scope(client, "introspect")
        return super().authenticate_token(request, client)  # type: ignore[no-any-return]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return _find(token_string, token_type_hint)

    def check_permission(self, token: _Token, client: _Client, request: Any) -> bool:
        return True

    def introspect_token(self, token: _Token) -> dict[str, Any]:
        if token.access is not None:
            claims = token.access.claims
            fields = ("scope", "client_id", "sub", "exp", "iat", "nbf", "aud", "iss", "jti", "sid",
                      "acr", "amr", "auth_time")
            return {"active": True, "token_type": "access_token",
                    **{k: claims[k] for k in fields if k in claims}}
        sess = token.session
        assert sess is not None
        user = db.session.get(User, sess.user_id)
        return {"active": True, "token_type": "refresh_token", "sub": str(sess.user_id),
                "username": user.username if user else None, "client_id": sess.client_id,
                "sid": sess.id, "exp": int(sess.expires_at.timestamp())}


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = _AUTH_METHODS

    def authenticate_token(self, request: Any, client: _Client) -> _Token | None:
        _require_scope(client, "revoke")
        return super().authenticate_token(request, client)  # type: ignore[no-any-return]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return _find(token_string, token_type_hint)

    def revoke_token(self, token: _Token, request: Any) -> None:
        now = state.now()
        if token.access is not None:
            verified = token.access
            expires = datetime.fromtimestamp(verified.exp, UTC) + state.settings().clock_skew_leeway
            if verified.jti:
                revocations().revoke_jti(verified.jti, expires, now, "rfc7009")
            elif verified.token_hash:
                revocations().revoke_token_hash(verified.token_hash, expires, now, "rfc7009")
        elif token.session is not None:
            revoke_session(token.session, reason="rfc7009")


def init_app(app: Flask) -> None:
    """This app's Authlib server with the two endpoints."""
    server = AuthorizationServer(query_client=_query_client, save_token=lambda *_: None)
    server.init_app(app)
    server.register_endpoint(_Introspection)
    server.register_endpoint(_Revocation)
    app.extensions[_EXT] = server


def _server() -> AuthorizationServer:
    return current_app.extensions[_EXT]


@bp.post("/introspect")
@route_facts(response=IntrospectionSchema, public=True)
def introspect() -> Response:
    """RFC 7662: is this token active, and what does it say?"""
    return _server().create_endpoint_response(_Introspection.ENDPOINT_NAME)  # type: ignore[no-any-return]


@bp.post("/revoke")
@route_facts(response=RevokedSchema, public=True)
def revoke() -> Response:
    """RFC 7009: revoke an access or refresh token."""
    return _server().create_endpoint_response(_Revocation.ENDPOINT_NAME)  # type: ignore[no-any-return]
