"""The admin page (SPEC §8): users, keys, the HS256 migration and the audit log.

The role is checked on the verified token, and every change goes through
``app.admin.actions`` (the admin API's own functions, audited there) after
the same recent-step-up rule as the API.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import redirect, request, url_for
from marshmallow import ValidationError
from sqlalchemy import select
from werkzeug.wrappers import Response

from app import state
from app.admin import actions
from app.admin.schemas import AuditQuerySchema, PhaseSchema
from app.core import audit as audit_service
from app.core import migration
from app.core import sessions as session_service
from app.errors import Forbidden, NotFound, ValidationFailed
from app.extensions import db
from app.models import AuthSession, User
from app.security import keyops, snapshot
from app.security.issuing import session_limits
from app.web.pages import Notice, PageUser, bp, form, page, signed_in

_USERS_SHOWN = 50
_AUDIT_SHOWN = 50


def _admin() -> PageUser:
    me = signed_in()
    if not me.principal.has_role("admin"):
        raise Forbidden("This page is for administrators.")
    return me


def _changing_admin() -> PageUser:
    me = _admin()
    actions.require_recent_step_up()
    return me


def _done(notice: str) -> Response:
    return redirect(url_for("web.admin", n=notice), code=303)


def _user_list(q: str) -> tuple[list[User], dict[int, list[AuthSession]]]:
    stmt = select(User).order_by(User.id).limit(_USERS_SHOWN)
    if q:
        stmt = stmt.where(User.username.contains(q.lower(), autoescape=True))
    users = list(db.session.scalars(stmt))
    sessions: dict[int, list[AuthSession]] = defaultdict(list)
    for sess in session_service.live_sessions_of(db.session(), [u.id for u in users], state.now(),
                                                 session_limits()):
        sessions[sess.user_id].append(sess)
    return users, sessions


def _audit_filters() -> tuple[dict[str, Any], Notice | None]:
    wanted = {k: v for k, v in request.args.items() if k in ("event", "user_id") and v}
    try:
        return AuditQuerySchema().load({**wanted, "limit": _AUDIT_SHOWN}), None
    except ValidationError:
        return AuditQuerySchema().load({"limit": _AUDIT_SHOWN}), \
            Notice("error", "The audit filter is not valid; showing every event.")


@bp.get("/admin")
def admin() -> Response | tuple[str, int]:
    """Everything an operator looks at, on one page."""
    me = _admin()
    q = request.args.get("q", "")[:64]
    users, sessions = _user_list(q)
    filters, filter_notice = _audit_filters()
    keys = keyops.list_signing_keys()
    return page(
        "web/admin.html", me=me, notice=filter_notice, q=q, users=users, sessions=sessions,
        keys=keys, active_kid=next((k.kid for k in keys if k.state == "active"), None),
        phase=snapshot().phase, usage=migration.legacy_usage(db.session()),
        events=sorted(audit_service.EVENTS), event=filters["event"],
        user_filter=filters["user_id"], audit=audit_service.query(db.session(), **filters),
    )


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


@bp.post("/admin/users/<id:user_id>/revoke")
def admin_revoke_user(user_id: int) -> Response:
    _changing_admin()
    actions.revoke_all_tokens(_user(user_id))
    return _done("user_revoked")


@bp.post("/admin/users/<id:user_id>/disabled")
def admin_set_disabled(user_id: int) -> Response:
    """Disable a user (ending every session) or enable one, as the form says.

    The form names the state it wants (``disabled`` 1 or 0) rather than
    flipping it, so a form sent twice does not undo itself.
    """
    me = _changing_admin()
    wanted = request.form.get("disabled")
    if wanted not in ("0", "1"):
        raise ValidationFailed("Choose whether to disable or enable the user.")
    user = _user(user_id)
    if user.id == me.principal.user_id:
        raise Forbidden("You cannot disable your own account.")
    if user.disabled != (wanted == "1"):
        actions.update_user_account(user, disabled=wanted == "1")
    return _done("user_updated")


@bp.post("/admin/sessions/<session_id>/end")
def admin_end_session(session_id: str) -> Response:
    _changing_admin()
    actions.end_session(session_id)
    return _done("session_ended")


@bp.post("/admin/keys/rotate")
def admin_rotate() -> Response:
    _changing_admin()
    actions.rotate_keys(force=request.form.get("force") == "1")
    return _done("rotated")


@bp.post("/admin/keys/<kid>/revoke")
def admin_revoke_key(kid: str) -> Response:
    _changing_admin()
    actions.revoke_key(kid)
    return _done("key_revoked")


@bp.post("/admin/migration")
def admin_phase() -> Response:
    _changing_admin()
    actions.set_phase(form(PhaseSchema(), "phase")["phase"])
    return _done("phase_set")
