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

import functools
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RequestLimit

from app import state
from app.audit import audit
from app.config import Settings
from app.core.redis_connections import limiter_storage
from app.metrics import metrics

__all__ = ["client_ip", "init_app", "limit"]

_EXT = "tessera.limiter"
_Hook = TypeVar("_Hook")


def client_ip() -> str:
    """The caller's address (after ProxyFix trusted TRUSTED_PROXIES hops, and no more)."""
    return request.remote_addr or "unknown"


def _username_key() -> str:
    body = request.get_json(silent=True) if request.is_json else request.form
    name = body.get("username") if body is not None and hasattr(body, "get") else None
    if not isinstance(name, str):
        # A fixed key of its own: str(None) would count against a real user named "none".
        return "user:-"
    digest = hashlib.sha256(name.strip().lower().encode()).hexdigest()[:32]
    return f"user:{digest}"


def _failed(response: Response) -> bool:
    return response.status_code in (400, 401)


def _on_breach(limit: RequestLimit) -> None:
    window = limit.limit.get_expiry()
    try:
        seconds = limit.reset_at - time.time()  # one storage read, on refusals only
    except Exception:  # noqa: BLE001 - the storage died: the window's length is an upper bound
        seconds = window
    g.rate_limit_retry_after = max(1, min(window, math.ceil(seconds)))
    metrics().rate_limited.labels(request.endpoint or "").inc()
    audit("RATE_LIMITED", result="failure", reason=request.endpoint or "",
          details={"limit": str(limit.limit)})


def _route_limits() -> list[tuple[str, str, Callable[[], str], Callable[[], str], Any]]:
    """(endpoint, counter, limit setting, key function, deduct_when) for every route limit.

    A JSON route and its web page share one counter, so that the pages are no
    way around the API's limits.
    """
    s = state.settings()
    return [
        (endpoint, counter, setting, key_func, deduct_when)
        for endpoints, counter, setting, key_func, deduct_when in [
            (("auth.login", "web.login"), "login", lambda: s.ratelimit_login_per_ip,
             client_ip, _failed),
            (("auth.login", "web.login"), "login", lambda: s.ratelimit_login_per_username,
             _username_key, _failed),
            (("auth.mfa_verify", "web.login_mfa"), "mfa-verify", lambda: s.ratelimit_mfa,
             client_ip, None),
            (("mfa.step_up", "web.step_up"), "step-up", lambda: s.ratelimit_mfa, client_ip, None),
            (("auth.refresh", "web.resume"), "refresh", lambda: s.ratelimit_refresh,
             client_ip, None),
            (("auth.exchange",), "exchange", lambda: s.ratelimit_exchange, client_ip, None),
            (("auth.register",), "register", lambda: s.ratelimit_exchange, client_ip, None),
        ]
        for endpoint in endpoints
    ]


def init_app(app: Flask) -> None:
    """Make this app's Limiter and wrap the limited views (after blueprints are registered)."""
    if _EXT in app.extensions:
        raise RuntimeError("rate limits are already set up on this app")
    settings = app.extensions["tessera.settings"]
    storage_uri, storage_options = _storage(settings)
    limiter = Limiter(
        key_func=client_ip,
        storage_uri=storage_uri,
        storage_options=storage_options,
        strategy="fixed-window",
        # No X-RateLimit-* headers: they cost two storage reads on every limited
        # request; a refusal still says when to come back (Retry-After, below).
        headers_enabled=False,
        key_prefix="tessera-rl",
        on_breach=_on_breach,
        swallow_errors=True,  # a dead Redis must not take logins down with it
    )
    limiter.init_app(app)
    app.extensions[_EXT] = limiter
    with app.app_context():
        policies = _route_limits()
        for endpoint, counter, limit_value, key_func, deduct_when in policies:
            # Callable[..., Any]: the decorator keeps the view's signature, and mypy cannot
            # carry RouteCallable's sync-or-async union through its ParamSpec.
            view: Callable[..., Any] = app.view_functions[endpoint]
            app.view_functions[endpoint] = limiter.shared_limit(
                limit_value, f"{counter}:{key_func.__name__}", key_func=key_func,
                deduct_when=deduct_when, methods=_submissions(app, endpoint),
            )(view)
    _hooks_only_for(app, limiter, {endpoint for endpoint, *_ in policies} | _IN_VIEW_LIMITS)


def _storage(settings: Settings) -> tuple[str, dict[str, Any]]:
    """Where the counters live: the app's Redis (same URL, Sentinels, TLS), else memory."""
    # The options go on to the redis client, which takes float timeouts; flask-limiter's
    # annotation (dict[str, str | int]) is narrower than what it forwards.
    target = settings.redis_target
    return ("memory://", {}) if target is None else limiter_storage(target)


def _submissions(app: Flask, endpoint: str) -> list[str] | None:
    """Count a form page's posts, not its views: POST when the route takes it, else all."""
    methods = set().union(*(rule.methods or () for rule in app.url_map.iter_rules(endpoint)))
    return ["POST"] if "POST" in methods else None


# Views that call ``limit()`` themselves (the key needs the body or the principal).
_IN_VIEW_LIMITS = frozenset({"auth.mfa_verify", "mfa.step_up", "web.login_mfa", "web.step_up"})


def _owned_by(hook: Any, limiter: Limiter) -> bool:
    owner = getattr(hook, "__self__", None)
    if isinstance(hook, functools.partial):
        owner = hook.args[0] if hook.args else getattr(hook.func, "__self__", None)
    return owner is limiter


def _hooks_only_for(app: Flask, limiter: Limiter, endpoints: set[str] | frozenset[str]) -> None:
    """Run flask-limiter's app-wide hooks only on the limited endpoints.

    They cost about 70 µs per request, on every route, while only the views
    above are limited; those views' own wrappers check their limits, and the
    hooks (moved to the limited views' blueprints) still add Retry-After and
    apply ``deduct_when`` where it matters.
    """

    def before(hook: Callable[[], Any]) -> Callable[[], Any]:
        return lambda: hook() if request.endpoint in endpoints else None

    def after(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda response: hook(response) if request.endpoint in endpoints else response

    def teardown(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda exc: hook(exc) if request.endpoint in endpoints else None

    blueprints = {endpoint.split(".", 1)[0] for endpoint in endpoints}

    # Each registry holds its own kind of hook, so each gets a call of its own (typed).
    def move(registry: dict[str | None, list[_Hook]], wrap: Callable[[_Hook], _Hook]) -> None:
        hooks = registry.get(None, [])
        owned = [h for h in hooks if _owned_by(h, limiter)]
        registry[None] = [h for h in hooks if not _owned_by(h, limiter)]
        for name in blueprints:  # blueprint-scoped: other areas never call them
            registry.setdefault(name, []).extend(wrap(h) for h in owned)

    move(app.before_request_funcs, before)
    move(app.after_request_funcs, after)
    move(app.teardown_request_funcs, teardown)
    for name in blueprints:
        app.after_request_funcs.setdefault(name, []).append(_retry_after)


def _retry_after(response: Response) -> Response:
    """SPEC §9: a 429 says, in whole seconds, when the refused limit's window ends."""
    seconds = g.get("rate_limit_retry_after")
    if response.status_code == 429 and seconds is not None:
        response.headers["Retry-After"] = str(seconds)
    return response


@contextmanager
def limit(limit_value: str, key: str, scope: str) -> Iterator[None]:
    """A limit inside a view, where the key needs the request's principal or body."""
    limiter: Limiter = current_app.extensions[_EXT]
    with limiter.shared_limit(limit_value, scope, key_func=lambda: key):
        yield
