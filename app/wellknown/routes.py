"""JWKS and discovery metadata (SPEC §9; RFC 7517, RFC 8414, RFC 9728)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from .. import state
from ..core.migration import accepts_hs256
from ..route_facts import route_facts
from ..security import snapshot
from .schemas import AuthorizationServerSchema, JwksSchema, ProtectedResourceSchema

bp = Blueprint("wellknown", __name__, url_prefix="/.well-known")


@bp.get("/jwks.json")
@route_facts(
    response=JwksSchema,
    content_type="application/jwk-set+json",
    not_modified=True,
    public=True,
)
def jwks() -> Response:
    """Public keys (standby, active, retired); body and headers built once per keyring load."""
    current = snapshot()
    headers = _jwks_headers(current.jwks_etag)
    # The environ, not request.headers: a dict lookup instead of a header scan (hot path).
    if "HTTP_IF_NONE_MATCH" in request.environ and request.if_none_match.contains_weak(
            current.jwks_etag):
        return Response(status=304, headers=headers[1:])
    return Response(current.jwks_body, headers=headers)


def _jwks_headers(etag: str) -> list[tuple[str, str]]:
    cached: dict[str, list[tuple[str, str]]] = current_app.extensions.setdefault(
        "tessera.jwks_headers", {})
    headers = cached.get(etag)
    if headers is None:
        cached.clear()  # one keyring state at a time
        headers = cached[etag] = [
            ("Content-Type", "application/jwk-set+json"),
            ("ETag", f'"{etag}"'),
            ("Cache-Control", f"public, max-age={state.settings().jwks_max_age}"),
        ]
    return headers


def _base() -> str:
    return state.settings().issuer.rstrip("/")


def migration_member() -> dict[str, object]:
    """``tessera_migration``: the phase and sunset that verifiers elsewhere follow (SPEC §4).

    ``phase`` is the effective phase every worker uses (it follows a change within
    KEYRING_REFRESH); ``legacy_sunset`` is LEGACY_ACCEPT_UNTIL in epoch seconds, known
    in advance so that a verifier refuses HS256 at that very second without asking
    again; ``legacy_accepted`` is the two combined at the time of the answer.
    """
    phase = snapshot().phase
    until = state.settings().legacy_accept_until
    # Exact, fraction included (a NumericDate may have one): rounded either way, a
    # verifier would refuse before Tessera does, or accept after it stopped.
    sunset = until.timestamp() if until is not None else None
    if sunset is not None and sunset.is_integer():
        sunset = int(sunset)
    accepted = accepts_hs256(phase, until, state.now())
    return {"phase": phase, "legacy_accepted": accepted, "legacy_sunset": sunset}


@bp.get("/oauth-authorization-server")
@route_facts(response=AuthorizationServerSchema, not_modified=True, public=True)
def authorization_server_metadata() -> Response:
    """RFC 8414 metadata for the parts of OAuth that Tessera serves, and nothing more.

    Tessera has no OAuth token endpoint: tokens come from its own login API, which
    no standard OAuth client can drive, so neither ``token_endpoint`` nor a grant is
    claimed (``grant_types_supported`` is empty: omitted, it would mean
    authorization_code and implicit). The revocation and introspection endpoints
    are real (RFC 7009, RFC 7662) and authenticate service clients with a secret;
    no endpoint takes JWT client assertions, so no ``*_auth_signing_alg_values``.

    One extension member (RFC 8414 §2 allows them), ``tessera_migration``, tells
    resource servers whether HS256 tokens are still accepted; the document may be
    cached for METADATA_MAX_AGE seconds and carries an ETag for conditional requests.
    """
    base = _base()
    secret_auth = ["client_secret_basic", "client_secret_post"]
    response = jsonify(
        issuer=state.settings().issuer,
        jwks_uri=f"{base}/.well-known/jwks.json",
        revocation_endpoint=f"{base}/oauth/revoke",
        introspection_endpoint=f"{base}/oauth/introspect",
        revocation_endpoint_auth_methods_supported=secret_auth,
        introspection_endpoint_auth_methods_supported=secret_auth,
        response_types_supported=[],
        grant_types_supported=[],
        scopes_supported=["notes:read", "notes:write"],
        acr_values_supported=["aal1", "aal2"],
        tessera_migration=migration_member(),
    )
    response.headers["Cache-Control"] = f"public, max-age={state.settings().metadata_max_age}"
    response.add_etag()
    response.make_conditional(request)  # 304 for a matching If-None-Match; same object
    return response


@bp.get("/oauth-protected-resource")
@route_facts(response=ProtectedResourceSchema, public=True)
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
