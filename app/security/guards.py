"""Route guards (SPEC §8) and deny-by-default blueprints.

``protect_blueprint(bp)`` authenticates every request to ``bp`` before the
view runs, unless the view is marked ``@public``; the decorators below add
scopes, roles and MFA freshness on top.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from flask import Blueprint, current_app, g, request

from .. import state
from ..audit import audit
from ..errors import Forbidden, InsufficientScope, StepUpRequired
from .authentication import authenticate
from .principal import Principal

__all__ = [
    "protect_blueprint",
    "public",
    "require_auth",
    "require_mfa",
    "require_roles",
    "require_scopes",
]

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


class Guard(Protocol):
    """A decorator that keeps the view's signature (what the guard factories return)."""

    def __call__(self, view: Callable[P, R], /) -> Callable[P, R]: ...


_PUBLIC_ATTR = "_tessera_public"


def public(view: F) -> F:
    """Mark a view of a protected blueprint as open to anonymous callers."""
    setattr(view, _PUBLIC_ATTR, True)
    return view


def protect_blueprint(bp: Blueprint, *, roles: tuple[str, ...] = ()) -> None:
    """Authenticate (and check ``roles``) for every route of ``bp`` not marked public."""

    def guard() -> None:
        view = current_app.view_functions.get(request.endpoint or "")
        if view is None or getattr(view, _PUBLIC_ATTR, False):
            return  # unknown routes fall through to the JSON 404/405
        principal = authenticate()
        missing = [role for role in roles if not principal.has_role(role)]
        if missing:
            _denied(f"role:{missing[0]}")
            raise Forbidden(f"This needs the role {missing[0]}.")

    bp.before_request(guard)


def _denied(reason: str) -> None:
    audit("AUTHZ_DENIED", result="failure", reason=reason,
          details={"endpoint": request.endpoint or ""})


def _authenticated() -> Principal:
    """The principal already attached by the blueprint guard, or authenticate now."""
    principal: Principal | None = g.get("tessera_principal")
    return principal if principal is not None else authenticate()


def require_auth(view: Callable[P, R]) -> Callable[P, R]:
    """The request must carry a valid, unrevoked token."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _authenticated()
        return view(*args, **kwargs)

    return wrapper


def require_scopes(*scopes: str) -> Guard:
    """The token must hold every scope; else 403 ``insufficient_scope`` naming it."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            principal = _authenticated()
            for scope in scopes:
                if not principal.has_scope(scope):
                    _denied(f"scope:{scope}")
                    raise InsufficientScope(scope)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def require_roles(*roles: str) -> Guard:
    """The user must hold every role (from the verified token, never from input)."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            principal = _authenticated()
            for role in roles:
                if not principal.has_role(role):
                    _denied(f"role:{role}")
                    raise Forbidden(f"This needs the role {role}.")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def require_mfa(*, max_age: int) -> Guard:
    """RFC 9470: the token must be aal2 and its ``auth_time`` at most ``max_age`` seconds old."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            principal = _authenticated()
            now = state.now().timestamp()
            fresh = principal.auth_time is not None and now - principal.auth_time <= max_age
            if principal.acr != "aal2" or not fresh:
                _denied("step_up_required")
                raise StepUpRequired(max_age)
            return view(*args, **kwargs)

        return wrapper

    return decorator
