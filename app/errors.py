"""One error vocabulary, rendered as JSON in one place (SPEC §9).

Every error the app answers has the shape
``{"error": "<code>", "message": "...", "details": {...}, "request_id": "..."}``.

    TesseraError (status 400, "invalid_request")
    ├── ValidationFailed        400 invalid_request   field-by-field details
    ├── Unauthorized            401 unauthorized      wrong credentials
    ├── InvalidToken            401 invalid_token     internal reason kept apart
    ├── StepUpRequired          401 insufficient_user_authentication (RFC 9470)
    ├── Forbidden               403 forbidden
    │   ├── InsufficientScope   403 insufficient_scope
    │   └── CsrfFailed          403 csrf_failed
    ├── NotFound                404 not_found
    ├── Conflict                409 conflict
    ├── UnsupportedMediaType    415 unsupported_media_type
    ├── RateLimited             429 rate_limited
    └── ServiceUnavailable      503 unavailable

The core's errors (``app.core.errors.CoreError``, Flask-free, with a machine
``code``) become one of these here and only here, by ``CORE_ERRORS``; a route
may answer some codes as a field error instead (``route_facts(field_errors=...)``).

Handlers also turn marshmallow's ``ValidationError``, werkzeug's
``HTTPException`` (keeping ``Allow``, ``Retry-After``, ``WWW-Authenticate``)
and, as a last resort, any other exception into this shape.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from .core.errors import CoreError
from .extensions import db
from .route_facts import RouteFacts, facts_of

__all__ = [
    "TesseraError",
    "ValidationFailed",
    "Unauthorized",
    "InvalidToken",
    "StepUpRequired",
    "Forbidden",
    "InsufficientScope",
    "CsrfFailed",
    "NotFound",
    "Conflict",
    "UnsupportedMediaType",
    "RateLimited",
    "ServiceUnavailable",
    "BAD_CODE",
    "CORE_ERRORS",
    "answer_for",
    "error_response",
    "from_core",
    "http_error_response",
    "init_app",
]

log = logging.getLogger(__name__)


class TesseraError(Exception):
    """Base of every error Tessera answers on purpose."""

    status = 400
    error = "invalid_request"
    message = "The request is invalid."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details or {}
        self.headers = headers or {}


class ValidationFailed(TesseraError):
    message = "The request body is invalid."


class Unauthorized(TesseraError):
    status, error, message = 401, "unauthorized", "Authentication failed."


class InvalidToken(TesseraError):
    """A bearer token failed verification; ``reason`` is for logs and metrics only."""

    status, error, message = 401, "invalid_token", "The access token is invalid."

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(
            message,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
        self.reason = reason


class StepUpRequired(TesseraError):
    """RFC 9470: the token is valid but not strong or recent enough."""

    status, error = 401, "insufficient_user_authentication"
    message = "A recent multi-factor authentication is required."

    def __init__(self, max_age: int | None = None) -> None:
        challenge = 'Bearer error="insufficient_user_authentication", acr_values="aal2"'
        if max_age is not None:
            challenge += f", max_age={max_age}"
        super().__init__(headers={"WWW-Authenticate": challenge})


class Forbidden(TesseraError):
    status, error, message = 403, "forbidden", "You may not do this."


class InsufficientScope(Forbidden):
    error, message = "insufficient_scope", "The token lacks a required scope."

    def __init__(self, scope: str) -> None:
        super().__init__(
            details={"scope": scope},
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )


class CsrfFailed(Forbidden):
    error, message = "csrf_failed", "The CSRF check failed."


class NotFound(TesseraError):
    status, error, message = 404, "not_found", "Not found."


class Conflict(TesseraError):
    status, error, message = 409, "conflict", "The request conflicts with the current state."


class UnsupportedMediaType(TesseraError):
    status, error = 415, "unsupported_media_type"
    message = "The body must be JSON (Content-Type: application/json)."


class RateLimited(TesseraError):
    status, error, message = 429, "rate_limited", "Too many requests; try again later."


class ServiceUnavailable(TesseraError):
    status, error, message = 503, "unavailable", "The service cannot answer right now."


BAD_CODE = "The code is wrong or was already used."

# The core's error codes -> the answer's class and message (``None``: the core's own
# message, which names the rule broken). A ValidationFailed is a field error: its
# details name the core's ``field`` (or the route's name for it, see RouteFacts).
CORE_ERRORS: dict[str, tuple[type[TesseraError], str | None]] = {
    "invalid_user": (ValidationFailed, None),
    "weak_password": (ValidationFailed, None),
    "username_taken": (Conflict, "This username is taken."),
    "invalid_client": (ValidationFailed, None),
    "unknown_client": (NotFound, "No such client."),
    "unknown_key": (NotFound, "No such live key."),
    "mfa_already_enabled": (Conflict, "MFA is already on; turn it off first."),
    "mfa_not_enabled": (Conflict, "MFA is off; there are no recovery codes to renew."),
    "no_pending_enrollment": (Conflict, "Start the enrolment first."),
    "invalid_code": (Unauthorized, BAD_CODE),
    "key_refused": (Conflict, None),
    "rotation_refused": (Conflict, None),
    "no_passkeys": (Conflict, "You have no passkey."),
    # The passkey flows answer a refused ceremony themselves (audited, with its reason);
    # one that reached the handler is still the caller's failed authentication.
    "passkey_rejected": (Unauthorized, "The passkey's answer is malformed."),
}


def from_core(exc: CoreError, facts: RouteFacts | None = None) -> TesseraError | None:
    """The answer to ``exc`` on a route with ``facts``; None for a code with no answer
    (a failure of ours, such as a key that cannot be unsealed: a 500)."""
    mapped = CORE_ERRORS.get(exc.code)
    if mapped is None:
        return None
    kind, message = mapped
    facts = facts or RouteFacts()
    if kind is ValidationFailed or exc.code in facts.field_errors:
        field = exc.field or "_schema"
        field = dict(facts.field_names).get(field, field)
        return ValidationFailed(details={field: [message or exc.message]})
    return kind(message or exc.message)


def answer_for(exc: TesseraError | CoreError) -> TesseraError:
    """``exc`` as the answer a page or a view gives (a core error by ``CORE_ERRORS``)."""
    if isinstance(exc, TesseraError):
        return exc
    answer = from_core(exc)
    if answer is None:
        raise exc
    return answer


# werkzeug's exception names -> our machine codes
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def error_response(
    status: int,
    error: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build the one JSON error shape; every handler ends here."""
    body = {
        "error": error,
        "message": message,
        "details": details or {},
        "request_id": g.get("request_id"),
    }
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _handle_tessera(exc: TesseraError) -> Response:
    return error_response(exc.status, exc.error, exc.message, exc.details, exc.headers)


def _handle_core(exc: CoreError) -> Response:
    answer = from_core(exc, facts_of(current_app.view_functions.get(request.endpoint or "")))
    if answer is None:
        return _handle_unexpected(exc)
    return _handle_tessera(answer)


def _handle_validation(exc: ValidationError) -> Response:
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return error_response(400, "invalid_request", "The request body is invalid.", messages)


def http_error_response(exc: HTTPException) -> Response:
    """werkzeug's HTTP errors (404, 405, 413...) in the JSON shape, keeping their headers."""
    status = exc.code or 500
    kept = {name: value for name, value in exc.get_response().headers.items()
            if name in _KEPT_HEADERS}
    error = _HTTP_CODES.get(status, "http_error")
    return error_response(status, error, exc.description or exc.name, headers=kept)


def _handle_unexpected(exc: Exception) -> Response:
    # Never a traceback or internal detail in the body; the log has both, keyed by request id.
    db.session.rollback()
    log.exception("unhandled error (request_id=%s)", g.get("request_id"))
    return error_response(500, "server_error", "An unexpected error occurred.")


def init_app(app: Flask) -> None:
    """Register the JSON error handlers."""
    app.register_error_handler(TesseraError, _handle_tessera)
    app.register_error_handler(CoreError, _handle_core)
    app.register_error_handler(ValidationError, _handle_validation)
    app.register_error_handler(HTTPException, http_error_response)
    app.register_error_handler(Exception, _handle_unexpected)
