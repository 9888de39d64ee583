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
from marshmallow import Schema

from .admin import schemas as admin_schemas
from .api.schemas import NoteSchema
from .auth import schemas as auth_schemas
from .events.schemas import PollSchema
from .mfa import passkey_schemas as passkey
from .mfa.schemas import CodeSchema, ConfirmSchema
from .models.base import MAX_INTEGER_ID

__all__ = ["build_spec", "init_app"]

_EXT = "tessera.openapi"

REQUEST_BODIES: dict[str, type[Schema]] = {
    "auth.login": auth_schemas.LoginSchema,
    "auth.register": auth_schemas.RegisterSchema,
    "auth.change_password": auth_schemas.PasswordChangeSchema,
    "auth.mfa_verify": auth_schemas.MfaVerifySchema,
    "auth.replace_temporary_password": auth_schemas.ReplaceTemporaryPasswordSchema,
    "mfa.confirm": ConfirmSchema,
    "mfa.step_up": CodeSchema,
    "passkeys.register_options": passkey.PasskeyRegisterOptionsSchema,
    "passkeys.register": passkey.PasskeyRegisterSchema,
    "passkeys.rename_passkey": passkey.PasskeyRenameSchema,
    "passkeys.step_up": passkey.PasskeyCredentialSchema,
    "passkeys.login_options": passkey.PasskeyLoginOptionsSchema,
    "passkeys.login": passkey.PasskeyLoginSchema,
    "passkey_pages.login": passkey.PasskeyCredentialSchema,
    "api.create_note": NoteSchema,
    "admin.create_user": admin_schemas.UserCreateSchema,
    "admin.update_user": admin_schemas.UserUpdateSchema,
    "admin.temporary_password": admin_schemas.TemporaryPasswordSchema,
    "admin.revoke_token": admin_schemas.TokenRevokeSchema,
    "admin.rotate_keys": admin_schemas.RotateSchema,
    "admin.set_migration": admin_schemas.PhaseSchema,
    "admin.create_client": admin_schemas.ClientCreateSchema,
    "admin.update_client": admin_schemas.ClientUpdateSchema,
    "events.poll": PollSchema,
}
QUERY_STRINGS: dict[str, type[Schema]] = {
    "admin.list_users": admin_schemas.UserQuerySchema,
    "admin.audit_log": admin_schemas.AuditQuerySchema,
}
# Routes whose caller needs no token (everything under /api and /admin needs one).
_ANONYMOUS = {"oauth.introspect", "oauth.revoke", "ops.healthz", "ops.readyz", "ops.prometheus_metrics", "ops.openapi",
              "auth.login", "auth.register", "auth.refresh", "auth.mfa_verify",
              "auth.replace_temporary_password", "passkeys.login_options", "passkeys.login",
              # the login page's passkey step: its mfa_token is an HttpOnly cookie
              "passkey_pages.login_options", "passkey_pages.login",
              "events.ssf_configuration", "events.poll", "events.stream"}
# Routes a service client calls with its credentials (HTTP Basic), not a user's token.
_CLIENT_BASIC = {"events.poll", "events.stream"}
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


def _operation(app: Flask, endpoint: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    doc = (app.view_functions[endpoint].__doc__ or endpoint).strip().splitlines()[0]
    operation: dict[str, Any] = {
        "operationId": endpoint,
        "summary": doc,
        "tags": [endpoint.split(".")[0]],
        "parameters": list(params),
        "responses": {
            "200": {"description": "Success.", "content": {"application/json": {
                "schema": {"type": "object"}}}},
            **{code: {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}} for code, text in _ERRORS.items()},
        },
    }
    if endpoint.startswith("oauth."):
        _as_oauth(operation)
    if endpoint in REQUEST_BODIES:
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": REQUEST_BODIES[endpoint]}}}
    if endpoint in QUERY_STRINGS:
        operation["parameters"].append({"in": "query", "schema": QUERY_STRINGS[endpoint]})
    if endpoint not in _ANONYMOUS and not endpoint.startswith("wellknown."):
        operation["security"] = [{"bearer": []}, {"cookie": []}]
    if endpoint in _CLIENT_BASIC:
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
        if rule.endpoint in ("api.create_note", "admin.create_user", "admin.create_client",
                             "auth.register", "passkeys.register"):
            operations["post"]["responses"]["201"] = {"description": "Created.", "content": {
                "application/json": {"schema": {"type": "object"}}}}
        if rule.endpoint == "wellknown.jwks":
            operations["get"]["responses"]["200"]["content"] = {
                "application/jwk-set+json": {"schema": {"type": "object"}}}
            operations["get"]["responses"]["304"] = {"description": "Not modified."}
        if rule.endpoint == "ops.prometheus_metrics":
            operations["get"]["responses"]["200"]["content"] = {
                "text/plain": {"schema": {"type": "string"}}}
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _serve() -> Response:
    document = current_app.extensions.get(_EXT)
    if document is None:  # built once, on first use, from the final URL map
        document = current_app.extensions[_EXT] = build_spec(current_app)
    response = jsonify(document)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def init_app(app: Flask) -> None:
    """Serve the document at /openapi.json."""
    app.add_url_rule("/openapi.json", endpoint="ops.openapi", view_func=_serve)
