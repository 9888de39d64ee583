"""The login pages: password, forced password change, MFA challenge, silent resume,
sign-out (SPEC §5, §7). Forms post back and every step redirects (303)."""

from __future__ import annotations

from flask import redirect, request, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from .. import state
from ..auth import flows
from ..auth.schemas import LoginSchema
from ..errors import InvalidToken, Unauthorized, ValidationFailed
from ..mfa.schemas import CodeSchema
from ..ratelimit import LOGIN_PER_IP, LOGIN_PER_USERNAME, MFA_VERIFY, REFRESH
from ..route_facts import route_facts
from ..security import check_csrf
from ..security.cookies import cookie_names, put_cookie
from .pages import (
    LoginNeeded,
    Notice,
    Page,
    bp,
    form,
    local_path,
    mark_resumed,
    page,
    signed_in,
    to_login,
)
from .sign_in import (
    drop_mfa_challenge,
    drop_password_challenge,
    signed_in_response,
    to_password_change,
)

__all__: list[str] = []


@bp.get("/")
def home() -> Response:
    return redirect(url_for("web.account"), code=303)


@bp.route("/login", methods=["GET", "POST"])
@route_facts(
    limits=(LOGIN_PER_IP, LOGIN_PER_USERNAME),
    gives_back=True,
    error_page="web/login.html",
)
def login() -> Page:
    """The password step; users with MFA go on to the challenge page."""
    if request.method == "GET":
        return page("web/login.html")
    check_csrf()  # login CSRF: the form carries the value of the cookie set with it
    try:
        body = form(LoginSchema(), "username", "password")
    except ValidationError:
        return page("web/login.html", status=400,
                    notice=Notice("error", "Enter your username and password."))
    try:
        outcome = flows.password_login(body["username"], body["password"])
    except Unauthorized as exc:
        return page("web/login.html", status=401, notice=Notice("error", exc.message))
    if isinstance(outcome, flows.MfaNeeded):
        response = redirect(url_for("web.login_mfa"), code=303)
        s = state.settings()
        put_cookie(response, "mfa", outcome.mfa_token,
                   max_age=int(s.mfa_token_ttl.total_seconds()), secure=s.cookie_secure)
        return response
    if isinstance(outcome, flows.PasswordChangeNeeded):
        return to_password_change(outcome)
    return signed_in_response(outcome, local_path(request.args.get("next")))


@bp.route("/login/password", methods=["GET", "POST"])
@route_facts(error_page="web/password.html")
def login_password() -> Page:
    """The forced change after a temporary password; the session opens once it is done."""
    challenge = request.cookies.get(cookie_names(state.settings().cookie_secure).password)
    if not challenge:
        return to_login("mfa_expired", clear=False)
    if request.method == "GET":
        return page("web/password.html")
    check_csrf()
    new, again = request.form.get("new_password", ""), request.form.get("new_password_again", "")
    if not new or new != again:
        return page("web/password.html", status=400,
                    notice=Notice("error", "Enter the same new password twice."))
    try:
        started = flows.complete_password_change(challenge, new)
    except InvalidToken:
        return drop_password_challenge(to_login("mfa_expired", clear=False))
    except ValidationFailed as exc:
        reason = exc.details.get("new_password", [exc.message])[0]
        return page("web/password.html", status=400, notice=Notice("error", str(reason)))
    return drop_password_challenge(
        signed_in_response(started, url_for("web.account", n="password_set")))


@bp.route("/login/mfa", methods=["GET", "POST"])
@route_facts(limits=(MFA_VERIFY,), limited_in_view=True, error_page="web/mfa.html")
def login_mfa() -> Page:
    """The second step: a TOTP or recovery code against the challenge kept in a cookie."""
    challenge = request.cookies.get(cookie_names(state.settings().cookie_secure).mfa)
    if not challenge:
        return to_login("mfa_expired", clear=False)
    if request.method == "GET":
        return page("web/mfa.html")
    check_csrf()
    try:
        code = form(CodeSchema(), "code")["code"]
    except ValidationError:
        return page("web/mfa.html", status=400, notice=Notice("error", "Enter your code."))
    try:
        started = flows.complete_mfa_login(challenge, code)
    except InvalidToken:
        return drop_mfa_challenge(to_login("mfa_expired", clear=False))
    except Unauthorized as exc:
        return page("web/mfa.html", status=401, notice=Notice("error", exc.message))
    if isinstance(started, flows.PasswordChangeNeeded):
        return drop_mfa_challenge(to_password_change(started))
    return drop_mfa_challenge(signed_in_response(started, url_for("web.account")))


@bp.get("/auth/resume")
@route_facts(limits=(REFRESH,))
def resume() -> Response:
    """Silent refresh for pages: rotate the refresh cookie (sent only under /auth), go back.

    A GET because pages reach it by redirect. SameSite=Strict keeps the cookie
    off cross-site requests, a request another site started is refused, and so
    is anything but a top-level navigation (a fetch, an image, a frame). The
    page it returns to is marked, so that a page still refused goes to the
    login page instead of coming back here.
    """
    if (request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none")
            or request.headers.get("Sec-Fetch-Mode", "navigate") != "navigate"):
        return to_login(clear=False)
    presented = request.cookies.get(cookie_names(state.settings().cookie_secure).refresh)
    if not presented:
        return to_login("expired")
    try:
        started = flows.rotate_refresh(presented)
    except Unauthorized as exc:
        return to_login("reuse" if exc.details.get("reason") == "refresh_reuse" else "expired")
    return mark_resumed(signed_in_response(started, local_path(request.args.get("next"))))


@bp.post("/auth/signout")
def logout() -> Response:
    """Log out, even after the access token has expired.

    Under /auth so that the refresh cookie comes along: when the access token
    no longer does, the refresh cookie names the session to end.
    """
    try:
        me = signed_in()
    except LoginNeeded:
        presented = request.cookies.get(cookie_names(state.settings().cookie_secure).refresh)
        if presented:
            check_csrf()  # the refresh cookie authenticates this post
            flows.log_out_by_refresh_token(presented)
    else:
        flows.log_out(me.principal)
    return to_login("logged_out")
