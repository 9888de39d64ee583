"""What a route takes and returns, declared on the view and read by the OpenAPI and limiter code.

    @bp.post("/login")
    @route_facts(body=LoginSchema, response=LoginResponseSchema, public=True,
                 limits=(LOGIN_PER_IP, LOGIN_PER_USERNAME), gives_back=True)
    def login() -> Response: ...

``app.openapi`` documents each JSON route from its facts (bodies, query
strings, the 2xx answer's schema, whether a token is needed) and
``app.ratelimit`` wraps each view that declares ``limits``. The facts ride
on the view function itself, so that ``functools.wraps`` (the guards,
flask-limiter's wrappers) carries them to whatever Flask finally calls:
a route's facts live beside its code, not in lists keyed by endpoint name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from marshmallow import Schema

__all__ = ["Limit", "Response", "RouteFacts", "facts_of", "route_facts"]

# The 2xx answer: a schema, one of several schemas (a tuple), or a JSON Schema as a
# dict for a body that is not a JSON object (the Prometheus text).
Response = type[Schema] | tuple[type[Schema], ...] | dict[str, Any]

_ATTR = "__tessera_route_facts__"
_View = TypeVar("_View", bound=Callable[..., object])


@dataclass(frozen=True)
class Limit:
    """One rate limit: its shared ``counter`` (a JSON route and its page share one),
    the ``Settings`` attribute holding the limit, and what the caller is counted by."""

    counter: str
    setting: str
    key: Literal["ip", "username"] = "ip"


@dataclass(frozen=True)
class RouteFacts:
    """Everything the documentation and the limiter need to know about one view."""

    body: type[Schema] | None = None  # the JSON request body
    query: type[Schema] | None = None  # the query string
    response: Response | None = None  # the 2xx answer
    status: int = 200  # the success status (201 for a creation)
    content_type: str = "application/json"
    not_modified: bool = False  # may answer 304 to a conditional GET
    public: bool = False  # no token needed (documented without a security requirement)
    # A service client calls it with its credentials (HTTP Basic), not a user's token.
    client_basic: bool = False
    limits: tuple[Limit, ...] = ()  # applied around the view by app.ratelimit
    # The view also counts inside itself (``ratelimit.limit``): the limiter's hooks
    # must run on it although ``limits`` may be empty.
    limited_in_view: bool = False
    # A login: its places in the counters are given back unless it failed.
    gives_back: bool = False
    # A web page: the form shown again, with the reason, when the step is refused.
    error_page: str | None = None
    # Core error codes this route answers as a 400 on the field (app.errors.CORE_ERRORS
    # has the usual answer), and the body's name for a core field: (core, body).
    field_errors: tuple[str, ...] = ()
    field_names: tuple[tuple[str, str], ...] = ()


def route_facts(
    *, body: type[Schema] | None = None, query: type[Schema] | None = None,
    response: Response | None = None, status: int = 200,
    content_type: str = "application/json", not_modified: bool = False, public: bool = False,
    client_basic: bool = False, limits: tuple[Limit, ...] = (), limited_in_view: bool = False,
    gives_back: bool = False,
    error_page: str | None = None, field_errors: tuple[str, ...] = (),
    field_names: tuple[tuple[str, str], ...] = (),
) -> Callable[[_View], _View]:
    """Attach these ``RouteFacts`` to the view (which is otherwise returned unchanged)."""
    declared = RouteFacts(body, query, response, status, content_type, not_modified, public,
                          client_basic, limits, limited_in_view, gives_back, error_page,
                          field_errors, field_names)

    def attach(view: _View) -> _View:
        setattr(view, _ATTR, declared)
        return view

    return attach


_NONE = RouteFacts()


def facts_of(view: Callable[..., object] | None) -> RouteFacts:
    """The facts declared on ``view`` (defaults when it declares none)."""
    found = getattr(view, _ATTR, None)
    return found if isinstance(found, RouteFacts) else _NONE
