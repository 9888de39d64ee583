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
from werkzeug.wrappers import Response

from .. import state
from ..admin import actions
from ..admin.schemas import AuditQuerySchema, PhaseSchema, UserCreateSchema, UserUpdateSchema
from ..core import audit as audit_service
from ..core import clients as client_service
from ..core import mfa as mfa_service
from ..core import migration, migration_chart, passkey_store
from ..core import sessions as session_service
from ..core import users as user_service
from ..core.errors import CoreError
from ..errors import Forbidden, NotFound, ValidationFailed, answer_for
from ..extensions import db
from ..models import AuthSession, User
from ..security import keyops, snapshot
from ..security.issuing import session_limits
from .pages import Notice, PageUser, bp, form, page, signed_in

_USERS_SHOWN = 50  # per page; the page reads one more to know if another follows
_AUDIT_SHOWN = 50

__all__ = ["admin_page", "changing_admin", "done", "first_detail"]


def _admin() -> PageUser:
    me = signed_in()
    if not me.principal.has_role("admin"):
        raise Forbidden("This page is for administrators.")
    return me


def changing_admin() -> PageUser:
    me = _admin()
    actions.require_recent_step_up()
    return me


def done(notice: str) -> Response:
    return redirect(url_for("web.admin", n=notice), code=303)


def _migration_chart() -> dict[str, Any]:
    traffic = migration_chart.daily_traffic(db.session(), state.now().date())
    return {"traffic": traffic,
            "chart": migration_chart.draw(traffic, state.settings().legacy_accept_until)}


def _after(name: str) -> int | None:
    """A keyset cursor from the query string (the last id of the previous page), if sane."""
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and 0 < len(value) <= 9 else None


def _user_list(q: str) -> tuple[list[User], dict[int, list[AuthSession]]]:
    users = user_service.page_users(db.session(), q=q, after_id=_after("after_id"),
                                    limit=_USERS_SHOWN + 1)  # one more: is there a next page?
    sessions: dict[int, list[AuthSession]] = defaultdict(list)
    for sess in session_service.live_sessions_of(db.session(), [u.id for u in users], state.now(),
                                                 session_limits()):
        sessions[sess.user_id].append(sess)
    return users, sessions


def _audit_filters() -> tuple[dict[str, Any], Notice | None]:
    wanted = {k: v for k, v in request.args.items()
              if k in ("event", "user_id", "before_id") and v}
    try:
        return AuditQuerySchema().load({**wanted, "limit": _AUDIT_SHOWN + 1}), None
    except ValidationError:
        return AuditQuerySchema().load({"limit": _AUDIT_SHOWN + 1}), \
            Notice("error", "The audit filter is not valid; showing every event.")


@bp.get("/admin")
def admin() -> Response | tuple[str, int]:
    """Everything an operator looks at, on one page."""
    return admin_page(_admin())


def admin_page(me: PageUser, *, notice: Notice | None = None, status: int = 200,
                **shown_once: Any) -> tuple[str, int]:
    """The admin page; ``shown_once`` carries a secret shown in this answer only."""
    q = request.args.get("q", "")[:64]
    users, sessions = _user_list(q)
    filters, filter_notice = _audit_filters()
    audit = audit_service.query(db.session(), **filters)
    keys = keyops.describe_signing_keys()
    shown, audit_shown = users[:_USERS_SHOWN], audit[:_AUDIT_SHOWN]
    return page(
        "web/admin.html", me=me, notice=notice or filter_notice, status=status, q=q,
        users=shown, sessions=sessions,
        next_after_id=shown[-1].id if len(users) > len(shown) else None,
        mfa_users=mfa_service.enabled_among(db.session(), [u.id for u in shown]),
        passkeys=passkey_store.passkeys_among(db.session(), [u.id for u in shown]),
        keys=keys, active_kid=next((k.row.kid for k in keys if k.row.state == "active"), None),
        jwks_kids=keyops.published_kids(), **_migration_chart(),
        phase=snapshot().phase, signing=_signing_status(),
        usage=migration.legacy_usage(db.session()),
        events=sorted(audit_service.EVENTS), event=filters["event"],
        user_filter=filters["user_id"], audit=audit_shown,
        next_before_id=audit_shown[-1].id if len(audit) > len(audit_shown) else None,
        clients=client_service.list_clients(db.session()),
        client_scopes=client_service.CLIENT_SCOPES,
        now=state.now(),
        **shown_once,
    )


def _signing_status() -> migration.SigningStatus:
    current = snapshot()
    return migration.signing_status(current.phase, state.settings().legacy_accept_until,
                                    state.now(), current.signer.alg if current.signer else None)


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


@bp.post("/admin/users/<id:user_id>/revoke")
def admin_revoke_user(user_id: int) -> Response:
    changing_admin()
    actions.revoke_all_tokens(_user(user_id))
    return done("user_revoked")


@bp.post("/admin/users/<id:user_id>/disabled")
def admin_set_disabled(user_id: int) -> Response:
    """Disable a user (ending every session) or enable one, as the form says.

    The form names the state it wants (``disabled`` 1 or 0) rather than
    flipping it, so a form sent twice does not undo itself.
    """
    me = changing_admin()
    wanted = request.form.get("disabled")
    if wanted not in ("0", "1"):
        raise ValidationFailed("Choose whether to disable or enable the user.")
    user = _user(user_id)
    if user.id == me.principal.user_id:
        raise Forbidden("You cannot disable your own account.")
    if user.disabled != (wanted == "1"):
        actions.update_user_account(user, disabled=wanted == "1")
    return done("user_updated")


@bp.post("/admin/users")
def admin_create_user() -> Response | tuple[str, int]:
    """Create a user; "must change at first login" makes the password temporary."""
    me = changing_admin()
    roles = [r for r in request.form.get("roles", "").replace(",", " ").split() if r]
    try:
        body = UserCreateSchema().load({
            "username": request.form.get("username", ""),
            "password": request.form.get("password", ""), "roles": roles,
            "temporary": request.form.get("temporary") == "1"})
    except ValidationError as exc:
        return admin_page(me, status=400, notice=Notice("error", _first_problem(exc)))
    try:
        actions.create_user(body["username"], body["password"], body["roles"],
                            temporary=body["temporary"])
    except (ValidationFailed, CoreError) as exc:
        return admin_page(me, status=400, notice=Notice("error", first_detail(exc)))
    return done("user_created")


def _first_problem(exc: ValidationError) -> str:
    messages: dict[str, Any] = exc.messages if isinstance(exc.messages, dict) else {}
    if not messages:
        return "The form is not valid."
    name = min(messages)
    detail = messages[name]
    text = detail[0] if isinstance(detail, list) and detail else "is not valid"
    return f"{name}: {text}"


def first_detail(exc: ValidationFailed | CoreError) -> str:
    """The first field problem of a refused form; a refusal that is no field error
    (a taken username: 409) is raised as its own answer instead."""
    answer = answer_for(exc)
    if not isinstance(answer, ValidationFailed):
        raise answer from None
    name, problems = next(iter(answer.details.items()), ("form", [answer.message]))
    return f"{name}: {problems[0]}"


@bp.post("/admin/users/<id:user_id>/reset-mfa")
def admin_reset_mfa(user_id: int) -> Response:
    changing_admin()
    actions.reset_mfa(_user(user_id))
    return done("mfa_reset")


@bp.post("/admin/users/<id:user_id>/temporary-password")
def admin_temporary_password(user_id: int) -> tuple[str, int]:
    """Set a temporary password (blank: generated); shown in this answer only, never in a URL."""
    me = changing_admin()
    user = _user(user_id)
    given = request.form.get("password") or None
    try:
        password = actions.set_temporary_password(user, given)
    except (ValidationFailed, CoreError) as exc:
        return admin_page(me, status=400, notice=Notice("error", first_detail(exc)))
    return admin_page(me, notice=Notice("info", f"{user.username} must choose a new password "
                                                 "at the next login."),
                       temporary_password=password, temporary_for=user.username)


@bp.post("/admin/users/<id:user_id>/roles")
def admin_set_roles(user_id: int) -> Response | tuple[str, int]:
    """Set the user's roles (space or comma separated); their tokens end to pick them up."""
    me = changing_admin()
    user = _user(user_id)
    roles = [r for r in request.form.get("roles", "").replace(",", " ").split() if r]
    try:
        body = UserUpdateSchema().load({"roles": roles})
    except ValidationError as exc:
        return admin_page(me, status=400, notice=Notice("error", _first_problem(exc)))
    if user.id == me.principal.user_id and "admin" not in body["roles"]:
        raise Forbidden("You cannot take the admin role from yourself.")
    if sorted(set(body["roles"])) != user.roles:
        actions.update_user_account(user, roles=body["roles"])
    return done("user_updated")


@bp.post("/admin/sessions/<session_id>/end")
def admin_end_session(session_id: str) -> Response:
    changing_admin()
    actions.end_session(session_id)
    return done("session_ended")


@bp.post("/admin/keys/rotate")
def admin_rotate() -> Response:
    changing_admin()
    actions.rotate_keys(force=request.form.get("force") == "1")
    return done("rotated")


@bp.post("/admin/keys/<kid>/revoke")
def admin_revoke_key(kid: str) -> Response:
    changing_admin()
    actions.revoke_key(kid)
    return done("key_revoked")


@bp.post("/admin/migration")
def admin_phase() -> Response:
    changing_admin()
    actions.set_phase(form(PhaseSchema(), "phase")["phase"])
    return done("phase_set")
