"""The account pages (SPEC §5, §7).

Forms post back and every change redirects (303) to a page that says what
happened; the two answers that show a secret once (a new TOTP secret, the
recovery codes) render the page directly instead, so a secret never travels
in a URL.
"""

from __future__ import annotations

import base64
from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from .. import state
from ..auth import flows
from ..auth.cookies import set_access_cookie
from ..auth.schemas import PasswordChangeSchema
from ..core import mfa as mfa_service
from ..core import passkey_store
from ..core import sessions as session_service
from ..core.crypto import constant_time_equal, sha256_hex
from ..core.errors import CoreError
from ..errors import Forbidden, Unauthorized, ValidationFailed, answer_for
from ..extensions import db
from ..mfa import flows as mfa_flows
from ..mfa.schemas import CodeSchema, ConfirmSchema
from ..ratelimit import STEP_UP
from ..route_facts import route_facts
from ..security.issuing import access_token_for, session_limits
from .pages import (
    Notice,
    Page,
    PageUser,
    bp,
    form,
    page,
    signed_in,
    to_login,
)

__all__: list[str] = []


@bp.post("/account/logout-all")
def logout_all() -> Response:
    flows.log_out_everywhere(signed_in().principal)
    return to_login("everywhere")


def _account(me: PageUser, *, notice: Notice | None = None, status: int = 200,
             **shown_once: Any) -> Page:
    sessions = session_service.live_sessions(db.session(), me.principal.user_id, state.now(),
                                             session_limits())
    user_id = me.principal.user_id
    # Both facts are read here anyway: has_second_factor would read them again.
    mfa_enabled = mfa_service.is_enabled(db.session(), user_id)
    passkeys = passkey_store.list_passkeys(db.session(), user_id)
    return page("web/account.html", me=me, notice=notice, status=status, sessions=sessions,
                mfa_enabled=mfa_enabled, passkeys=passkeys,
                second_factor=mfa_enabled or bool(passkeys), **shown_once)


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
    except (Unauthorized, Forbidden, CoreError) as refused:
        exc = answer_for(refused)  # a wrong code is the core's InvalidCode
        if not isinstance(exc, (Unauthorized, Forbidden)):
            raise exc from None
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
@route_facts(limits=(STEP_UP,), limited_in_view=True)
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
