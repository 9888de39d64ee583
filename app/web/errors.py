"""What a page answers when something fails: a redirect to log in, or a page with a plain
sentence (never JSON, never a stack trace); 404 and 405 anywhere for a browser."""

from __future__ import annotations

import logging

from flask import current_app, g, make_response, redirect, request, url_for
from marshmallow import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Response

from .. import state
from ..core.errors import CoreError
from ..errors import StepUpRequired, TesseraError, from_core, http_error_response
from ..extensions import db
from ..route_facts import facts_of
from ..security.cookies import cookie_names
from .pages import LoginNeeded, Notice, PageUser, bp, drop_resumed, page, signed_in, to_login

log = logging.getLogger("tessera.web")

# The JSON areas: their 404s stay JSON whatever the Accept header prefers.
_API_PATHS = ("/api", "/auth", "/mfa", "/admin/api", "/.well-known", "/oauth", "/healthz",
              "/readyz", "/metrics", "/openapi.json")


def _resume_target() -> str:
    """Where to come back to after a silent refresh: this page, or the form's page.

    A form cannot be posted again from a redirect, so its page says to submit
    it again rather than dropping it silently.
    """
    if request.method in ("GET", "HEAD"):
        return request.full_path.rstrip("?")
    page_endpoint = "web.admin" if (request.endpoint or "").startswith("web.admin") \
        else "web.account"
    return url_for(page_endpoint, n="resubmit")


def _needs_login() -> Response:
    names = cookie_names(state.settings().cookie_secure)
    if request.cookies.get(names.resumed):
        # Refused again right after a silent refresh: another one would loop.
        return drop_resumed(to_login("resume_failed", clear=False))
    if request.cookies.get(names.csrf):
        # The CSRF cookie lives as long as the session: try a silent refresh first.
        return redirect(url_for("web.resume", next=_resume_target()), code=303)
    return to_login(clear=False)


_STEP_UP_TEXT = ("This change needs a fresh confirmation: enter a code from your "
                 "authenticator app on the Account page, then try again.")
_TOO_MANY = "Too many attempts. Please wait a minute and try again."


def _describe(exc: Exception) -> tuple[int, str]:
    """The status and the sentence a person sees for ``exc``."""
    if isinstance(exc, CoreError):
        answer = from_core(exc, facts_of(current_app.view_functions.get(request.endpoint or "")))
        exc = answer if answer is not None else exc
    if isinstance(exc, StepUpRequired):
        return 403, _STEP_UP_TEXT
    if isinstance(exc, TesseraError):
        return exc.status, exc.message
    if isinstance(exc, ValidationError):
        return 400, "Please fill in every field of the form."
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        texts = {404: "There is no such page.", 405: "This page does not take that request.",
                 413: "The form is too large.", 429: _TOO_MANY}
        return status, texts.get(status, "The request could not be handled.")
    db.session.rollback()
    log.exception("unhandled error on a page (request_id=%s)", g.get("request_id"))
    return 500, f"Something went wrong on our side (reference {g.get('request_id')})."


@bp.errorhandler(Exception)
def _error_page(exc: Exception) -> Response | tuple[str, int]:
    if isinstance(exc, LoginNeeded):
        return _needs_login()
    status, text = _describe(exc)
    view = current_app.view_functions.get(request.endpoint or "")
    template = facts_of(view).error_page or "web/message.html"
    return page(template, me=_best_effort_user(), notice=Notice("error", text), status=status)


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _routing_error(exc: HTTPException) -> Response:
    """404 and 405 anywhere: a page for a browser asking for a page, else the JSON error.

    Routing fails before any blueprint is chosen, so the pages' own handler
    never sees these; the JSON areas keep their JSON errors (SPEC §9).
    """
    if not _wants_page(exc):
        return http_error_response(exc)
    response = make_response(_error_page(exc))
    allow = exc.get_response().headers.get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


def _wants_page(exc: HTTPException) -> bool:
    if request.blueprint == bp.name:
        return True
    if request.accept_mimetypes.best_match(("application/json", "text/html")) != "text/html":
        return False
    endpoint = _endpoint_of_refused_method(exc)
    if endpoint is not None:
        return endpoint.startswith(f"{bp.name}.")
    return not any(request.path == area or request.path.startswith(f"{area}/")
                   for area in _API_PATHS)


def _endpoint_of_refused_method(exc: HTTPException) -> str | None:
    """For a 405, the endpoint its path leads to with a method it takes."""
    if not isinstance(exc, MethodNotAllowed) or not exc.valid_methods:
        return None
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        endpoint, _ = adapter.match(method=next(iter(exc.valid_methods)))
    except HTTPException:
        return None
    return str(endpoint)


def _best_effort_user() -> PageUser | None:
    principal = g.get("tessera_principal")
    if principal is None:
        return None
    try:
        return signed_in(principal)
    except LoginNeeded:
        return None
    except SQLAlchemyError:
        # The page names its error without the user rather than failing a second time.
        db.session.rollback()
        log.warning("no user for an error page: database error (request_id=%s)",
                    g.get("request_id"))
        return None
