"""JWKS and discovery metadata (SPEC §9; RFC 7517, RFC 8414, RFC 9728)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from app import state
from app.security import snapshot

bp = Blueprint("wellknown", __name__, url_prefix="/.well-known")


@bp.get("/jwks.json")
def jwks() -> Response:
    """Public keys (standby, active, retired); the body is built once per keyring load."""
    current = snapshot()
    if request.if_none_match.contains_weak(current.jwks_etag):
        response = Response(status=304)
    else:
        response = Response(current.jwks_body, mimetype="application/jwk-set+json")
    response.set_etag(current.jwks_etag)
    response.headers["Cache-Control"] = f"public, max-age={state.settings().jwks_max_age}"
    return response


def _base() -> str:
    return state.settings().issuer.rstrip("/")


@bp.get("/oauth-authorization-server")
def authorization_server_metadata() -> Response:
    """RFC 8414 metadata for the parts of OAuth that Tessera serves."""
    base = _base()
    return jsonify(
        issuer=state.settings().issuer,
        jwks_uri=f"{base}/.well-known/jwks.json",
        token_endpoint=f"{base}/auth/login",
        revocation_endpoint=f"{base}/oauth/revoke",
        introspection_endpoint=f"{base}/oauth/introspect",
        token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        revocation_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        introspection_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        response_types_supported=[],
        grant_types_supported=["password", "refresh_token"],
        scopes_supported=["notes:read", "notes:write"],
        acr_values_supported=["aal1", "aal2"],
        token_endpoint_auth_signing_alg_values_supported=["ES256", "RS256"],
    )


@bp.get("/oauth-protected-resource")
def protected_resource_metadata() -> Response:
    """RFC 9728: the resource is the audience of our access tokens."""
    settings = state.settings()
    return jsonify(
        resource=settings.access_audience,
        authorization_servers=[settings.issuer],
        jwks_uri=f"{_base()}/.well-known/jwks.json",
        bearer_methods_supported=["header"],
        scopes_supported=["notes:read", "notes:write"],
        resource_signing_alg_values_supported=["ES256", "RS256"],
    )
