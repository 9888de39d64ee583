"""The login, MFA challenge and account pages (SPEC §5, §7).

Forms post back and every change redirects (303) to a page that says what
happened; the two answers that show a secret once (a new TOTP secret, the
recovery codes) render the page directly instead, so a secret never travels
in a URL.
"""

from __future__ import annotations

import base64
from typing import Any

from flask import redirect, request, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from .. import state
from ..auth import flows
from ..auth.cookies import set_access_cookie
from ..auth.schemas import LoginSchema, PasswordChangeSchema
from ..core import mfa as mfa_service
from ..core import passkey_store
from ..core import sessions as session_service
from ..core.crypto import constant_time_equal, sha256_hex
from ..errors import Forbidden, InvalidToken, Unauthorized, ValidationFailed
from ..extensions import db
from ..mfa import flows as mfa_flows
from ..mfa import passkey_flows
from ..mfa.schemas import CodeSchema, ConfirmSchema
from ..security import check_csrf
from ..security.cookies import cookie_names
from ..security.issuing import access_token_for, session_limits
from .pages import (
    LoginNeeded,
    Notice,
    PageUser,
    bp,
    form,
    local_path,
    mark_resumed,
    page,
    signed_in,
    to_login,
)

__all__ = ["bp"]

_MFA_COOKIE_PATH = "/login/mfa"
_PASSWORD_COOKIE_PATH = "/login/password"
Page = Response | tuple[str, int]


def _signed_in_response(started: flows.StartedSession, target: str) -> Response:
    token, _ = flows.issue_tokens(started)
    response = redirect(target, code=303)
    flows.set_cookies(response, started, token)
    return response


@bp.get("/")
def home() -> Response:
    return redirect(url_for("web.account"), code=303)


@bp.route("/login", methods=["GET", "POST"])
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
        response.set_cookie(cookie_names(s.cookie_secure).mfa, outcome.mfa_token,
                            max_age=int(s.mfa_token_ttl.total_seconds()), path=_MFA_COOKIE_PATH,
                            httponly=True, secure=s.cookie_secure, samesite="Strict")
        return response
    if isinstance(outcome, flows.PasswordChangeNeeded):
        return _to_password_change(outcome)
    return _signed_in_response(outcome, local_path(request.args.get("next")))


def _password_cookie() -> str:
    prefix = "__Secure-" if state.settings().cookie_secure else ""
    return prefix + "password_change_token"


def _to_password_change(outcome: flows.PasswordChangeNeeded) -> Response:
    """A temporary password: on to the page that replaces it, the token in a scoped cookie."""
    response = redirect(url_for("web.login_password"), code=303)
    s = state.settings()
    response.set_cookie(_password_cookie(), outcome.password_change_token,
                        max_age=int(s.mfa_token_ttl.total_seconds()), path=_PASSWORD_COOKIE_PATH,
                        httponly=True, secure=s.cookie_secure, samesite="Strict")
    return response


def _drop_password_challenge(response: Response) -> Response:
    s = state.settings()
    response.delete_cookie(_password_cookie(), path=_PASSWORD_COOKIE_PATH, httponly=True,
                           secure=s.cookie_secure, samesite="Strict")
    return response


@bp.route("/login/password", methods=["GET", "POST"])
def login_password() -> Page:
    """The forced change after a temporary password; the session opens once it is done."""
    challenge = request.cookies.get(_password_cookie())
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
        return _drop_password_challenge(to_login("mfa_expired", clear=False))
    except ValidationFailed as exc:
        reason = exc.details.get("new_password", [exc.message])[0]
        return page("web/password.html", status=400, notice=Notice("error", str(reason)))
    return _drop_password_challenge(
        _signed_in_response(started, url_for("web.account", n="password_set")))


def _drop_challenge(response: Response) -> Response:
    s = state.settings()
    response.delete_cookie(cookie_names(s.cookie_secure).mfa, path=_MFA_COOKIE_PATH,
                           httponly=True, secure=s.cookie_secure, samesite="Strict")
    return response


@bp.route("/login/mfa", methods=["GET", "POST"])
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
        return _drop_challenge(to_login("mfa_expired", clear=False))
    except Unauthorized as exc:
        return page("web/mfa.html", status=401, notice=Notice("error", exc.message))
    if isinstance(started, flows.PasswordChangeNeeded):
        return _drop_challenge(_to_password_change(started))
    return _drop_challenge(_signed_in_response(started, url_for("web.account")))


@bp.get("/auth/resume")
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
    return mark_resumed(_signed_in_response(started, local_path(request.args.get("next"))))


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


@bp.post("/account/logout-all")
def logout_all() -> Response:
    flows.log_out_everywhere(signed_in().principal)
    return to_login("everywhere")


def _account(me: PageUser, *, notice: Notice | None = None, status: int = 200,
             **shown_once: Any) -> Page:
    sessions = session_service.live_sessions(db.session(), me.principal.user_id, state.now(),
                                             session_limits())
    user_id = me.principal.user_id
    return page("web/account.html", me=me, notice=notice, status=status, sessions=sessions,
                mfa_enabled=mfa_service.is_enabled(db.session(), user_id),
                passkeys=passkey_store.list_passkeys(db.session(), user_id),
                second_factor=passkey_flows.has_second_factor(user_id), **shown_once)


@bp.get("/account")
def account() -> Page:
    """Sessions, two-step verification and password."""
    return _account(signed_in())


@bp.post("/account/sessions/<session_id>/end")
def end_session(session_id: str) -> Response:
    flows.end_own_session(signed_in().principal, session_id)
    return redirect(url_for("web.account", n="session_ended"), code=303)


def _shown(enrollment: mfa_service.Enrollment) -> str:
    """Names the secret a page showed, for its form to send back: a digest, so holding it
    proves one already saw the secret (that page), and gives nothing else away."""
    return sha256_hex(f"tessera-enrollment:{enrollment.secret}")[:32]


def _enrollment(me: PageUser, enrollment: mfa_service.Enrollment, **kwargs: Any) -> Page:
    qr_src = "data:image/svg+xml;base64," + base64.b64encode(enrollment.qr_svg.encode()).decode()
    return _account(me, enrollment=enrollment, qr_src=qr_src, shown=_shown(enrollment), **kwargs)


@bp.post("/account/mfa/enroll")
def mfa_enroll() -> Page:
    """Show a new secret and its QR code (once); MFA turns on when a code confirms it."""
    me = signed_in()
    return _enrollment(me, mfa_flows.begin_enrollment(me.principal))


@bp.post("/account/mfa/confirm")
def mfa_confirm() -> Page:
    """The password and a code turn MFA on (issue 16 item 9).

    A wrong code or password shows the same secret again (the app already holds
    it), but only to the page that showed it: the form sends back ``_shown`` of
    that secret. Anyone else (a stolen session's holder; or the owner, when
    someone started another enrolment meanwhile) is told to set up again.
    """
    me = signed_in()
    body = form(ConfirmSchema(), "code", "current_password")
    try:
        codes = mfa_flows.confirm_enrollment(me.principal, body["current_password"], body["code"])
    except (Unauthorized, Forbidden) as exc:
        wrong = "That code did not match." if isinstance(exc, Unauthorized) else exc.message
        pending = mfa_flows.pending_enrollment(me.principal)
        if pending is None or not constant_time_equal(_shown(pending),
                                                      request.form.get("enrollment", "")):
            return _account(me, status=exc.status, notice=Notice(
                "error", f"{wrong} Set up the authenticator app again."))
        again = " Enter the code your app shows now." if isinstance(exc, Unauthorized) else ""
        return _enrollment(me, pending, status=exc.status, notice=Notice("error", wrong + again))
    return _account(me, recovery_codes=codes,
                    notice=Notice("info", "Two-step verification is on."))


@bp.post("/account/step-up")
def step_up() -> Response:
    """A code raises this session to aal2 with a fresh auth_time; a new access cookie."""
    me = signed_in()
    code = form(CodeSchema(), "code")["code"]
    user, sess = mfa_flows.step_up(me.principal, code)
    token, _ = access_token_for(user, sess)
    response = redirect(url_for("web.account", n="stepped_up"), code=303)
    set_access_cookie(response, token)
    return response


@bp.post("/account/password")
def change_password() -> Page:
    me = signed_in()
    body = form(PasswordChangeSchema(), "current_password", "new_password")
    try:
        flows.change_password(me.principal, body["current_password"], body["new_password"])
    except Forbidden as exc:
        return _account(me, status=403, notice=Notice("error", exc.message))
    except ValidationFailed as exc:
        reason = exc.details.get("new_password", [exc.message])[0]
        return _account(me, status=400, notice=Notice("error", str(reason)))
    return redirect(url_for("web.account", n="password_changed"), code=303)
