"""Rate limits (SPEC §9) with flask-limiter, one Limiter per app.

A module-level Limiter would keep the first app's storage and settings for
every later app (tests, several apps in one process), so each app gets its
own, kept in ``app.extensions``, and the route limits are applied to that
app's registered view functions in ``init_app``.

Counters are shared by every worker (``storage()``): in Redis when
``REDIS_URL`` is set, else in the app's database (``app.core.ratelimit_storage``).
While that store fails, flask-limiter counts in each worker's memory (its
in-memory fallback) and tries the store again after a back-off: a limit is
never off, though during an outage each worker counts alone.

Failed logins: every attempt takes its place in both login counters before
the password is checked, and gets it back when it did not fail (a success, or
a 429 that checked nothing). Counting after the answer let every request in
flight pass the check; this way at most the limit's number of failures are
ever checked in a window, however many arrive at once. The 11th wrong
password in a minute from one address is refused, however the usernames vary.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RequestLimit
from limits.storage import MemoryStorage, RedisStorage
from redis import Redis
from redis.exceptions import NoScriptError
from sqlalchemy import Engine

from .audit import audit
from .config import Settings
from .core import ratelimit_storage  # registers the tessera-db:// storage scheme
from .core.redis_connections import limiter_storage
from .extensions import db
from .metrics import metrics
from .route_facts import Limit, facts_of

__all__ = [
    "EVENTS",
    "EXCHANGE",
    "LOGIN_PER_IP",
    "LOGIN_PER_USERNAME",
    "MFA_VERIFY",
    "REFRESH",
    "REGISTER",
    "STEP_UP",
    "client_ip",
    "init_app",
    "limit",
    "storage",
]

# The route limits, declared on their views (``@route_facts(limits=...)``). A JSON
# route and its web page name the same one, so that they share one counter and the
# pages are no way around the API's limits.
LOGIN_PER_IP = Limit("login", "ratelimit_login_per_ip")
LOGIN_PER_USERNAME = Limit("login", "ratelimit_login_per_username", key="username")
MFA_VERIFY = Limit("mfa-verify", "ratelimit_mfa")
STEP_UP = Limit("step-up", "ratelimit_mfa")
PASSKEY_OPTIONS = Limit("passkey-options", "ratelimit_mfa")  # its own: options spend no answers
REFRESH = Limit("refresh", "ratelimit_refresh")
EXCHANGE = Limit("exchange", "ratelimit_exchange")
REGISTER = Limit("register", "ratelimit_exchange")
EVENTS = Limit("events", "ratelimit_events")  # the stream's poll and configuration

log = logging.getLogger(__name__)

_EXT = "tessera.limiter"
_GIVES_BACK = "tessera.ratelimit.gives_back"  # endpoints of logins, read at start-up
_IN_VIEW_LOCK = "tessera.limiter.in_view_lock"
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


def storage(settings: Settings, engine: Engine) -> tuple[str, dict[str, Any]]:
    """Where the counters live: the app's Redis (same URL, Sentinels, TLS), else the
    app's database; flask-limiter's storage URI and its options."""
    target = settings.redis_target
    if target is not None:
        return limiter_storage(target)
    return f"{ratelimit_storage.SCHEME}://", {"engine": engine}


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


def _limited_views(app: Flask) -> list[tuple[str, Limit]]:
    """(endpoint, limit) for every limit declared on a registered view."""
    return [(endpoint, declared) for endpoint, view in app.view_functions.items()
            for declared in facts_of(view).limits]


def _key_func(declared: Limit) -> Callable[[], str]:
    return _username_key if declared.key == "username" else client_ip


def _limit_value(app: Flask, declared: Limit) -> Callable[[], str]:
    """The limit, read from the app's settings when a request checks it."""
    settings = app.extensions["tessera.settings"]
    return lambda: str(getattr(settings, declared.setting))


def init_app(app: Flask) -> None:
    """Make this app's Limiter and wrap the limited views (after blueprints are registered)."""
    if _EXT in app.extensions:
        raise RuntimeError("rate limits are already set up on this app")
    with app.app_context():  # the engine exists since db.init_app; nothing connects here
        storage_uri, storage_options = storage(app.extensions["tessera.settings"], db.engine)
    limiter = Limiter(
        key_func=client_ip,
        storage_uri=storage_uri,
        # flask-limiter's annotation (dict[str, str | int]) is narrower than what it
        # forwards to the storage (an engine, float timeouts).
        storage_options=storage_options,
        strategy="fixed-window",
        # No X-RateLimit-* headers: they cost two storage reads on every limited
        # request; a refusal still says when to come back (Retry-After, below).
        headers_enabled=False,
        key_prefix="tessera-rl",
        on_breach=_on_breach,
        # A failing store must not turn the limits off: count in this worker's memory
        # until the store answers again (flask-limiter retries it with a back-off).
        in_memory_fallback_enabled=True,
        swallow_errors=False,
    )
    limiter.init_app(app)
    _refuse_app_wide_limits(limiter)
    app.extensions[_EXT] = limiter
    app.extensions[_IN_VIEW_LOCK] = threading.Lock()
    limited = _limited_views(app)
    for endpoint, declared in limited:
        # Callable[..., Any]: the decorator keeps the view's signature, and mypy cannot
        # carry RouteCallable's sync-or-async union through its ParamSpec.
        view: Callable[..., Any] = app.view_functions[endpoint]
        key_func = _key_func(declared)
        app.view_functions[endpoint] = limiter.shared_limit(
            _limit_value(app, declared), f"{declared.counter}:{key_func.__name__}",
            key_func=key_func, methods=_submissions(app, endpoint),
        )(view)
    in_view = {endpoint for endpoint, view in app.view_functions.items()
               if facts_of(view).limited_in_view}
    app.extensions[_GIVES_BACK] = frozenset(
        endpoint for endpoint, view in app.view_functions.items() if facts_of(view).gives_back)
    _hooks_only_for(app, limiter, {endpoint for endpoint, _ in limited} | in_view)


def _refuse_app_wide_limits(limiter: Limiter) -> None:
    """Every limit is a route's (``route_facts``): flask-limiter's before-request hook,
    the only place default, application and meta limits are checked, does not run."""
    manager = limiter.limit_manager
    if manager.default_limits or manager.application_limits or limiter._meta_limits:
        raise RuntimeError("app-wide rate limits (RATELIMIT_DEFAULT, RATELIMIT_APPLICATION, "
                           "RATELIMIT_META) are not checked here: declare limits on routes")


def _submissions(app: Flask, endpoint: str) -> list[str] | None:
    """Count a form page's posts, not its views: POST when the route takes it, else all."""
    methods = set().union(*(rule.methods or () for rule in app.url_map.iter_rules(endpoint)))
    return ["POST"] if "POST" in methods else None


def _owned_by(hook: Any, limiter: Limiter) -> bool:
    owner = getattr(hook, "__self__", None)
    if isinstance(hook, functools.partial):
        owner = hook.args[0] if hook.args else getattr(hook.func, "__self__", None)
    return owner is limiter


def _hooks_only_for(app: Flask, limiter: Limiter, endpoints: set[str] | frozenset[str]) -> None:
    """Run flask-limiter's app-wide hooks only where they do something.

    They cost about 70 µs per request, on every route, while only the views
    that declare limits are; those views' own wrappers check their limits, and
    the after-request and teardown hooks (moved to the limited views'
    blueprints) still run where they matter. flask-limiter has no public switch
    for this: ``init_app`` always registers the three hooks app-wide, and its
    public ``request_filter`` only makes them return early (measured: 39-70 µs
    a request in the hooks with a filter, 0.1 µs with the hooks moved).

    The before-request hook is dropped, not moved: it checks only default,
    application and meta limits (a limited view's wrapper checks the view's own,
    and is where a failed store is tried again), and this app declares none
    (``_refuse_app_wide_limits``). On a limited route it cost 30-60 µs of a
    refresh for nothing.
    """

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

    app.before_request_funcs[None] = [
        h for h in app.before_request_funcs.get(None, []) if not _owned_by(h, limiter)]
    move(app.after_request_funcs, after)
    move(app.teardown_request_funcs, teardown)
    for name in blueprints:
        app.after_request_funcs.setdefault(name, []).extend((_retry_after, _give_back))


def _retry_after(response: Response) -> Response:
    """SPEC §9: a 429 says, in whole seconds, when the refused limit's window ends."""
    seconds = g.get("rate_limit_retry_after")
    if response.status_code == 429 and seconds is not None:
        response.headers["Retry-After"] = str(seconds)
    return response


def _give_back(response: Response) -> Response:
    """Return a login's places in its counters unless it failed (see the module doc).

    A success (2xx, 3xx) and a refusal (429) give back what they took; every
    other answer (400, 401, 403, 5xx, ...) keeps counting as a failed attempt.
    """
    status = response.status_code
    if request.endpoint in current_app.extensions[_GIVES_BACK] and (
            status < 400 or status == 429):
        limiter: Limiter = current_app.extensions[_EXT]
        taken = limiter.current_limits
        counters = taken[0].limiter.storage if taken else None
        if isinstance(counters, ratelimit_storage.DatabaseStorage):
            _refund_together(counters, taken)
        elif isinstance(counters, RedisStorage):
            _refund_pipelined(counters, taken)
        elif isinstance(counters, MemoryStorage):  # the fallback, while the store is down
            for one in taken:
                counters.decr(one.key)  # never below zero nor into a new window
    return response


def _refund_together(counters: ratelimit_storage.DatabaseStorage,
                     taken: list[RequestLimit]) -> None:
    """The database's refunds in one transaction (a login takes two places)."""
    try:
        counters.refund([one.key for one in taken])
    except counters.base_exceptions:
        log.warning("rate limit refund failed; the attempt stays counted", exc_info=True)


def _refund_pipelined(counters: RedisStorage, taken: list[RequestLimit]) -> None:
    """Redis's refunds in one round trip: limits' own increment-and-expire script (as
    ``incr(key, expiry, -1)`` runs it) for every counter, sent in one pipeline. The
    refunds come after argon2, and each separate reply cost about 0.2 ms of a login.

    The script is called by its digest alone: the hits ran it a moment ago. redis-py's
    pipeline would ask SCRIPT EXISTS first, a round trip of its own; a Redis that has
    lost the script since (a restart) gets the refund through ``incr``, which loads it.
    INCRBY -1 may open the next window at -1 if this one ended since the hit (one extra
    attempt in it, rarely).
    """
    script = counters.lua_incr_expire
    try:
        # limits types its connection by a protocol without pipeline(); it is a redis.Redis.
        pipeline = cast(Redis, counters.get_connection()).pipeline(transaction=False)
        for one in taken:
            pipeline.evalsha(script.sha, 1, counters.prefixed_key(one.key),
                             one.limit.get_expiry(), -1)
        replies = pipeline.execute(raise_on_error=False)
        for one, reply in zip(taken, replies, strict=True):
            if isinstance(reply, NoScriptError):
                counters.incr(one.key, one.limit.get_expiry(), amount=-1)
            elif isinstance(reply, Exception):
                raise reply
    except counters.base_exceptions:
        log.warning("rate limit refund failed; the attempt stays counted", exc_info=True)


@contextmanager
def limit(limit_value: str, key: str, scope: str) -> Iterator[None]:
    """A limit inside a view, where the key needs the request's principal or body.

    The attempt is counted on entry, before the body of the ``with`` checks
    anything, and refused (429) past the limit.
    """
    limiter: Limiter = current_app.extensions[_EXT]
    # flask-limiter keeps a context-manager limit in one slot per calling line,
    # shared by the process's threads, between storing it and counting it: without
    # the lock one thread's attempt could be counted under another's key and scope.
    with current_app.extensions[_IN_VIEW_LOCK]:
        limiter.shared_limit(limit_value, scope, key_func=lambda: key).__enter__()
    yield
