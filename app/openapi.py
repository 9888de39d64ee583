"""The OpenAPI 3 document of every JSON route (SPEC §9), generated from the URL map.

Request bodies and query strings come from the same marshmallow schemas the
views load (apispec's marshmallow plugin); every operation documents the
error shape with each status it can answer.
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, current_app, jsonify
from flask.wrappers import Response

from .models.base import MAX_INTEGER_ID
from .ops.schemas import OpenApiDocumentSchema
from .route_facts import RouteFacts, facts_of, route_facts

__all__ = ["build_spec", "init_app"]

_EXT = "tessera.openapi"

_ERRORS = {
    "400": "The request is invalid (details name each field).",
    "401": "Not authenticated, or the token is invalid.",
    "403": "Authenticated but not allowed (role, scope, CSRF).",
    "404": "Not found.",
    "405": "Method not allowed.",
    "409": "Conflicts with the current state.",
    "413": "Body over MAX_CONTENT_LENGTH.",
    "415": "The body must be JSON.",
    "429": "Rate limited; see Retry-After.",
    "503": "A dependency (database, Redis in closed mode, signing key) is unavailable.",
}
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message", "details"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "details": {"type": "object"},
        "request_id": {"type": ["string", "null"]},
    },
}


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for converter, name in re.findall(r"<(?:(\w+):)?(\w+)>", rule):
        kind = ({"type": "integer", "minimum": 1, "maximum": MAX_INTEGER_ID}
                if converter in ("int", "id") else {"type": "string", "maxLength": 128})
        params.append({"in": "path", "name": name, "required": True, "schema": kind})
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule), params


def _success(facts: RouteFacts) -> dict[str, Any]:
    """The 2xx answer: the view's declared response schema (one of several, if a tuple)."""
    declared = facts.response
    if declared is None:
        raise ValueError("a documented JSON route must declare its response schema")
    schema: Any = {"oneOf": list(declared)} if isinstance(declared, tuple) else declared
    return {"description": "Success.", "content": {facts.content_type: {"schema": schema}}}


def _operation(app: Flask, endpoint: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    view = app.view_functions[endpoint]
    facts = facts_of(view)
    doc = (view.__doc__ or endpoint).strip().splitlines()[0]
    operation: dict[str, Any] = {
        "operationId": endpoint,
        "summary": doc,
        "tags": [endpoint.split(".")[0]],
        "parameters": list(params),
        "responses": {
            str(facts.status): _success(facts),
            **{code: {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
               for code, text in _ERRORS.items()},
        },
    }
    if facts.not_modified:
        operation["responses"]["304"] = {"description": "Not modified."}
    if endpoint.startswith("oauth."):
        _as_oauth(operation)
    if facts.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": facts.body}}}
    if facts.query is not None:
        operation["parameters"].append({"in": "query", "schema": facts.query})
    if not facts.public:
        operation["security"] = [{"bearer": []}, {"cookie": []}]
    if facts.client_basic:
        operation["security"] = [{"client_basic": []}]
    return operation


_TOKEN_FORM = {
    "type": "object",
    "required": ["token"],
    "properties": {"token": {"type": "string"},
                   "token_type_hint": {"type": "string",
                                       "enum": ["access_token", "refresh_token"]}},
}


def _as_oauth(operation: dict[str, Any]) -> None:
    """RFC 7009/7662 endpoints: form bodies, client authentication, OAuth error bodies."""
    operation["requestBody"] = {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": _TOKEN_FORM}}}
    operation["security"] = [{"client_basic": []}]
    oauth_error = {"description": "OAuth error (RFC 6749 §5.2).", "content": {
        "application/json": {"schema": {"type": "object", "required": ["error"]}}}}
    operation["responses"]["400"] = operation["responses"]["401"] = oauth_error


def build_spec(app: Flask) -> dict[str, Any]:
    """The document for ``app``'s current URL map."""
    spec = APISpec(title="Tessera", version="1", openapi_version="3.1.0",
                   plugins=[MarshmallowPlugin()])
    spec.components.schema("Error", _ERROR_SCHEMA)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                               "bearerFormat": "JWT"})
    spec.components.security_scheme("client_basic", {"type": "http", "scheme": "basic"})
    spec.components.security_scheme("cookie", {"type": "apiKey", "in": "cookie",
                                               "name": "__Host-access_token"})
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.endpoint.startswith("web."):
            continue  # pages and files, not JSON
        path, params = _path(rule.rule)
        operations = {method.lower(): _operation(app, rule.endpoint, params)
                      for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})}
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@route_facts(response=OpenApiDocumentSchema, public=True)
def _serve() -> Response:
    """This OpenAPI document."""
    document = current_app.extensions.get(_EXT)
    if document is None:  # built once, on first use, from the final URL map
        document = current_app.extensions[_EXT] = build_spec(current_app)
    response = jsonify(document)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def init_app(app: Flask) -> None:
    """Serve the document at /openapi.json."""
    app.add_url_rule("/openapi.json", endpoint="ops.openapi", view_func=_serve)
