"""Rate limits (SPEC §9) with flask-limiter, one Limiter per app.

A module-level Limiter would keep the first app's storage and settings for
every later app (tests, several apps in one process), so each app gets its
own, kept in ``app.extensions``, and the route limits are applied to that
app's registered view functions in ``init_app``. Counters live in Redis when
``REDIS_URL`` is set (shared by every worker), in memory otherwise.

Login counts failed attempts only (``deduct_when``): the 11th wrong password
in a minute from one address is refused, however the usernames vary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RequestLimit

from app import state
from app.audit import audit
from app.metrics import metrics

__all__ = ["client_ip", "init_app", "limit"]

_EXT = "tessera.limiter"


def client_ip() -> str:
    """The caller's address (after ProxyFix trusted TRUSTED_PROXIES hops, and no more)."""
    return request.remote_addr or "unknown"


def _username_key() -> str:
    body = request.get_json(silent=True)
    name = body.get("username") if isinstance(body, dict) else None
    digest = hashlib.sha256(str(name).strip().lower().encode()).hexdigest()[:32]
    return f"user:{digest}"


def _failed(response: Response) -> bool:
    return response.status_code in (400, 401)


def _on_breach(limit: RequestLimit) -> None:
    metrics().rate_limited.labels(request.endpoint or "").inc()
    audit("RATE_LIMITED", result="failure", reason=request.endpoint or "",
          details={"limit": str(limit.limit)})


def _route_limits() -> list[tuple[str, Callable[[], str], Callable[[], str], Any]]:
    """(endpoint, limit setting, key function, deduct_when) for every route limit."""
    s = state.settings()
    return [
        ("auth.login", lambda: s.ratelimit_login_per_ip, client_ip, _failed),
        ("auth.login", lambda: s.ratelimit_login_per_username, _username_key, _failed),
        ("auth.mfa_verify", lambda: s.ratelimit_mfa, client_ip, None),
        ("mfa.step_up", lambda: s.ratelimit_mfa, client_ip, None),
        ("auth.refresh", lambda: s.ratelimit_refresh, client_ip, None),
        ("auth.exchange", lambda: s.ratelimit_exchange, client_ip, None),
        ("auth.register", lambda: s.ratelimit_exchange, client_ip, None),
    ]


def init_app(app: Flask) -> None:
    """Make this app's Limiter and wrap the limited views (after blueprints are registered)."""
    if _EXT in app.extensions:
        raise RuntimeError("rate limits are already set up on this app")
    settings = app.extensions["tessera.settings"]
    limiter = Limiter(
        key_func=client_ip,
        storage_uri=settings.redis_url or "memory://",
        storage_options={"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        if settings.redis_url else {},
        strategy="fixed-window",
        headers_enabled=True,
        key_prefix="tessera-rl",
        on_breach=_on_breach,
        swallow_errors=True,  # a dead Redis must not take logins down with it
    )
    limiter.init_app(app)
    app.extensions[_EXT] = limiter
    with app.app_context():
        for endpoint, limit_value, key_func, deduct_when in _route_limits():
            view = app.view_functions[endpoint]
            app.view_functions[endpoint] = limiter.limit(
                limit_value, key_func=key_func, deduct_when=deduct_when,
                scope=f"{endpoint}:{key_func.__name__}",
            )(view)


@contextmanager
def limit(limit_value: str, key: str, scope: str) -> Iterator[None]:
    """A limit inside a view, where the key needs the request's principal or body."""
    limiter: Limiter = current_app.extensions[_EXT]
    with limiter.limit(limit_value, key_func=lambda: key, scope=scope):
        yield
