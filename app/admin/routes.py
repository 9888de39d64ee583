"""The admin API (SPEC §8): role ``admin``; changes need a recent step-up when the admin has MFA."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from .. import state
from ..audit import audit
from ..core import audit as audit_service
from ..core import mfa as mfa_service
from ..core import passkey_store
from ..core import sessions as session_service
from ..core import users as user_service
from ..core.devices import device_name
from ..errors import NotFound
from ..extensions import db
from ..http import load_json
from ..mfa.passkey_routes import passkey_json
from ..models import AuthSession, User
from ..route_facts import route_facts
from ..security import current_principal
from ..security.guards import protect_blueprint
from ..security.issuing import session_limits
from ..security.revocation import longest_token_lifetime, revocations
from . import actions
from .responses import (
    AdminSessionsSchema,
    AuditPageSchema,
    MfaResetSchema,
    SessionEndedSchema,
    TemporaryPasswordSetSchema,
    TokenRevokedSchema,
    UserOutSchema,
    UserPageSchema,
    UserPasskeysSchema,
    UserTokensRevokedSchema,
)
from .schemas import (
    AuditQuerySchema,
    TemporaryPasswordSchema,
    TokenRevokeSchema,
    UserCreateSchema,
    UserQuerySchema,
    UserUpdateSchema,
)

bp = Blueprint("admin", __name__, url_prefix="/admin/api")
protect_blueprint(bp, roles=("admin",))


@bp.before_request
def _step_up_for_changes() -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.endpoint is not None:
        actions.require_recent_step_up()


def _query(schema: Any) -> Any:
    return schema.load(request.args.to_dict())


def _user_json(user: User, mfa_enabled: bool | None = None) -> dict[str, Any]:
    if mfa_enabled is None:
        mfa_enabled = mfa_service.is_enabled(db.session(), user.id)
    return {"id": user.id, "username": user.username, "roles": user.roles,
            "disabled": user.disabled, "created_at": user.created_at.isoformat(),
            "password_change_required": user.must_change_password,
            "mfa_enabled": mfa_enabled}


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


@bp.get("/users")
@route_facts(query=UserQuerySchema, response=UserPageSchema)
def list_users() -> Response:
    """Users by id, searched by name, keyset-paged (``after_id`` = ``next_after_id``)."""
    args = _query(UserQuerySchema())
    # One row more than asked tells whether another page follows (no empty last page).
    rows = user_service.page_users(db.session(), q=args["q"], after_id=args["after_id"],
                                   limit=args["limit"] + 1)
    shown = rows[:args["limit"]]
    with_mfa = mfa_service.enabled_among(db.session(), [u.id for u in shown])  # one query
    return jsonify(users=[_user_json(u, u.id in with_mfa) for u in shown],
                   next_after_id=shown[-1].id if len(rows) > len(shown) else None)


@bp.post("/users")
@route_facts(body=UserCreateSchema, response=UserOutSchema, status=201)
def create_user() -> tuple[Response, int]:
    """Create a user (``temporary``: the first login must replace the password)."""
    body = load_json(UserCreateSchema())
    user = actions.create_user(body["username"], body["password"], body["roles"],
                               temporary=body["temporary"])
    return jsonify(_user_json(user)), 201


@bp.post("/users/<id:user_id>/reset-mfa")
@route_facts(response=MfaResetSchema)
def reset_mfa(user_id: int) -> Response:
    """Remove the user's TOTP, recovery codes and passkeys (lost phone or key); their
    tokens end."""
    user = _user(user_id)
    was_on = actions.reset_mfa(user)
    return jsonify(user_id=user.id, mfa_was_enabled=was_on, mfa_enabled=False)


@bp.get("/users/<id:user_id>/passkeys")
@route_facts(response=UserPasskeysSchema)
def user_passkeys(user_id: int) -> Response:
    """The user's passkeys (names, kinds, last use; never keys); an MFA reset removes them."""
    user = _user(user_id)
    return jsonify(user_id=user.id, passkeys=[
        passkey_json(p) for p in passkey_store.list_passkeys(db.session(), user.id)])


@bp.post("/users/<id:user_id>/temporary-password")
@route_facts(body=TemporaryPasswordSchema, response=TemporaryPasswordSetSchema)
def temporary_password(user_id: int) -> Response:
    """Set a temporary password (given, or generated and shown once); their tokens end."""
    body = load_json(TemporaryPasswordSchema()) if request.content_length else {"password": None}
    user = _user(user_id)
    password = actions.set_temporary_password(user, body["password"])
    response = jsonify(user_id=user.id, temporary_password=password,
                       password_change_required=True)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.patch("/users/<id:user_id>")
@route_facts(body=UserUpdateSchema, response=UserOutSchema)
def update_user(user_id: int) -> Response:
    """Disable/enable (disabling ends every session at once) and set roles."""
    body = load_json(UserUpdateSchema())
    user = actions.update_user_account(_user(user_id), disabled=body.get("disabled"),
                                       roles=body.get("roles"))
    return jsonify(_user_json(user))


@bp.post("/users/<id:user_id>/revoke-tokens")
@route_facts(response=UserTokensRevokedSchema)
def revoke_tokens(user_id: int) -> Response:
    """Every token and session of that user, now."""
    user = _user(user_id)
    actions.revoke_all_tokens(user)
    return jsonify(revoked=True, user_id=user.id)


def _session_json(sess: AuthSession) -> dict[str, Any]:
    return {"id": sess.id, "user_id": sess.user_id, "client_id": sess.client_id,
            "created_at": sess.created_at.isoformat(),
            "last_used_at": sess.last_used_at.isoformat(), "ip": sess.ip,
            "user_agent": sess.user_agent, "device": device_name(sess.user_agent),
            "acr": sess.acr}


@bp.get("/users/<id:user_id>/sessions")
@route_facts(response=AdminSessionsSchema)
def user_sessions(user_id: int) -> Response:
    user = _user(user_id)
    rows = session_service.live_sessions(db.session(), user.id, state.now(), session_limits())
    return jsonify(sessions=[_session_json(s) for s in rows])


@bp.delete("/sessions/<session_id>")
@route_facts(response=SessionEndedSchema)
def end_session(session_id: str) -> Response:
    actions.end_session(session_id)
    return jsonify(ended=session_id)


@bp.post("/tokens/revoke")
@route_facts(body=TokenRevokeSchema, response=TokenRevokedSchema)
def revoke_token() -> Response:
    """Revoke one access token by its jti, for as long as any accepted token can live
    (the jti alone does not tell its ``exp``; a legacy token may live LEGACY_MAX_LIFETIME)."""
    body = load_json(TokenRevokeSchema())
    now = state.now()
    revocations().revoke_jti(body["jti"], now + longest_token_lifetime(), now, "admin")
    audit("TOKEN_REVOKED", actor_id=current_principal().user_id, reason="admin",
          details={"jti": body["jti"]})
    return jsonify(revoked=body["jti"])


@bp.get("/audit")
@route_facts(query=AuditQuerySchema, response=AuditPageSchema)
def audit_log() -> Response:
    """Audit events by user, event and time range, newest first; page with ``before_id``."""
    args = _query(AuditQuerySchema())
    limit = args.pop("limit")
    found = audit_service.query(db.session(), **args, limit=limit + 1)  # +1: is there more?
    rows = found[:limit]
    return jsonify(
        events=[{"id": e.id, "at": e.at.isoformat(), "event": e.event, "user_id": e.user_id,
                 "actor_id": e.actor_id, "session_id": e.session_id,
                 "request_id": e.request_id, "ip": e.ip, "user_agent": e.user_agent,
                 "result": e.result, "reason": e.reason, "kid": e.kid, "details": e.details}
                for e in rows],
        next_before_id=rows[-1].id if len(found) > limit else None,
    )
