"""Headers on every response: security (SPEC §9, issue 8) and the request id.

They are added at the WSGI edge, to the plain list of header tuples that
goes to the server, after Flask has built the response: every response gets
them (errors included) at a fraction of the cost of werkzeug's validated
``Headers`` API, which used to be a fifth of an authenticated request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

__all__ = ["CSP", "REQUEST_ID_KEY", "init_app"]

# No inline script or style anywhere: pages load /static files only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Where app.http leaves the request id for this layer (the WSGI environ outlives g).
REQUEST_ID_KEY = "tessera.request_id"
_FIXED = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    # same-origin, not no-referrer: under no-referrer browsers send "Origin: null" on
    # form posts, and the CSRF origin check needs the real one. Other sites get nothing.
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]
_HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
_NO_STORE = ("Cache-Control", "no-store")

StartResponse = Callable[..., Any]


class ResponseHeaders:
    """WSGI middleware adding the fixed headers, the request id and a default no-store."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            # An auth service caches nothing by default: tokens, sessions, user data.
            # Public documents (JWKS, metadata, OpenAPI) set their own Cache-Control.
            if not any(name.lower() == "cache-control" for name, _ in headers):
                headers.append(_NO_STORE)
            headers.extend(_FIXED)
            if environ.get("wsgi.url_scheme") == "https":
                headers.append(_HSTS)
            request_id = environ.get(REQUEST_ID_KEY)
            if request_id:
                headers.append(("X-Request-ID", request_id))
            return start_response(status, headers, *args)

        return self.app(environ, start)


def init_app(app: Flask) -> None:
    """Wrap the WSGI app (inside ProxyFix, so the scheme is the client's)."""
    app.wsgi_app = ResponseHeaders(app.wsgi_app)  # type: ignore[method-assign]
