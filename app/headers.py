"""Headers on every response: security (SPEC §9, issue 8) and the request id."""

from __future__ import annotations

from flask import Flask, Response, request

from app.http import request_id

__all__ = ["CSP", "init_app"]

# No inline script or style anywhere: pages load /static files only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Set by nothing else in the app, so they are added without looking first
# (one extend is a third of the cost of six setdefaults, on every response).
_FIXED = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]
_HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


def _secure(response: Response) -> Response:
    headers = response.headers
    headers.extend(_FIXED)
    headers.add("X-Request-ID", request_id())
    if request.is_secure:
        headers.add(*_HSTS)
    # An auth service caches nothing by default: tokens, sessions, user data.
    # Public documents (JWKS, metadata, OpenAPI) set their own Cache-Control.
    if "Cache-Control" not in headers:
        headers.add("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    app.after_request(_secure)
