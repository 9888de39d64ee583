"""The admin API (SPEC §8): role ``admin``; changes need a recent step-up when the admin has MFA."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from .. import state
from ..audit import audit
from ..core import audit as audit_service
from ..core import clients as client_service
from ..core import key_report, migration, migration_chart, passkey_store
from ..core import mfa as mfa_service
from ..core import sessions as session_service
from ..core import users as user_service
from ..core.devices import device_name
from ..errors import NotFound
from ..extensions import db
from ..http import load_json
from ..mfa.passkey_routes import passkey_json
from ..models import AuthSession, ServiceClient, SigningKey, User
from ..security import current_principal, keyops, snapshot
from ..security.guards import protect_blueprint
from ..security.issuing import session_limits
from ..security.revocation import longest_token_lifetime, revocations
from . import actions
from .schemas import (
    AuditQuerySchema,
    ClientCreateSchema,
    ClientUpdateSchema,
    PhaseSchema,
    RotateSchema,
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
def create_user() -> tuple[Response, int]:
    """Create a user (``temporary``: the first login must replace the password)."""
    body = load_json(UserCreateSchema())
    user = actions.create_user(body["username"], body["password"], body["roles"],
                               temporary=body["temporary"])
    return jsonify(_user_json(user)), 201


@bp.post("/users/<id:user_id>/reset-mfa")
def reset_mfa(user_id: int) -> Response:
    """Remove the user's TOTP, recovery codes and passkeys (lost phone or key); their
    tokens end."""
    user = _user(user_id)
    was_on = actions.reset_mfa(user)
    return jsonify(user_id=user.id, mfa_was_enabled=was_on, mfa_enabled=False)


@bp.get("/users/<id:user_id>/passkeys")
def user_passkeys(user_id: int) -> Response:
    """The user's passkeys (names, kinds, last use; never keys); an MFA reset removes them."""
    user = _user(user_id)
    return jsonify(user_id=user.id, passkeys=[
        passkey_json(p) for p in passkey_store.list_passkeys(db.session(), user.id)])


@bp.post("/users/<id:user_id>/temporary-password")
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
def update_user(user_id: int) -> Response:
    """Disable/enable (disabling ends every session at once) and set roles."""
    body = load_json(UserUpdateSchema())
    user = actions.update_user_account(_user(user_id), disabled=body.get("disabled"),
                                       roles=body.get("roles"))
    return jsonify(_user_json(user))


@bp.post("/users/<id:user_id>/revoke-tokens")
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
def user_sessions(user_id: int) -> Response:
    user = _user(user_id)
    rows = session_service.live_sessions(db.session(), user.id, state.now(), session_limits())
    return jsonify(sessions=[_session_json(s) for s in rows])


@bp.delete("/sessions/<session_id>")
def end_session(session_id: str) -> Response:
    actions.end_session(session_id)
    return jsonify(ended=session_id)


@bp.post("/tokens/revoke")
def revoke_token() -> Response:
    """Revoke one access token by its jti, for as long as any accepted token can live
    (the jti alone does not tell its ``exp``; a legacy token may live LEGACY_MAX_LIFETIME)."""
    body = load_json(TokenRevokeSchema())
    now = state.now()
    revocations().revoke_jti(body["jti"], now + longest_token_lifetime(), now, "admin")
    audit("TOKEN_REVOKED", actor_id=current_principal().user_id, reason="admin",
          details={"jti": body["jti"]})
    return jsonify(revoked=body["jti"])


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _key_json(row: SigningKey, view: key_report.KeyView | None = None) -> dict[str, Any]:
    described = {} if view is None else {
        "age_seconds": int(view.age.total_seconds()),
        "rotation_due_at": _when(view.rotation_due_at),
        "rotation_overdue": view.rotation_overdue,
        "expires_at": _when(view.expires_at), "published": view.published}
    return {"kid": row.kid, "alg": row.alg, "state": row.state,
            "created_at": _when(row.created_at), "activated_at": _when(row.activated_at),
            "retired_at": _when(row.retired_at), "expired_at": _when(row.expired_at),
            "revoked_at": _when(row.revoked_at), **described}


@bp.get("/keys")
def list_keys() -> Response:
    """Every key with its age, rotation due date, retired keys' expiry, and the JWKS kids."""
    views = keyops.describe_signing_keys()
    return jsonify(keys=[_key_json(v.row, v) for v in views],
                   jwks_kids=keyops.published_kids())


@bp.post("/keys/rotate")
def rotate_keys() -> Response:
    body = load_json(RotateSchema()) if request.content_length else {"force": False}
    result = actions.rotate_keys(force=body["force"])
    return jsonify(active_kid=result.active_kid, retired_kid=result.retired_kid,
                   standby_kid=result.standby_kid)


@bp.post("/keys/<kid>/revoke")
def revoke_key(kid: str) -> Response:
    return jsonify(_key_json(actions.revoke_key(kid)))


def _migration_json() -> dict[str, Any]:
    usage = migration.legacy_usage(db.session())
    until = state.settings().legacy_accept_until
    current = snapshot()
    status = migration.signing_status(current.phase, until, state.now(),
                                      current.signer.alg if current.signer else None)
    return {
        "phase": current.phase,
        "signing_alg": status.signing_alg,
        "legacy_accepted": status.legacy_accepted,
        "note": status.note,
        "legacy_accept_until": until.isoformat() if until else None,
        "legacy_usage": [{"day": u.day.isoformat(), "count": u.count} for u in usage],
        "last_legacy_token_at": max((u.last_seen_at for u in usage), default=None),
    }


@bp.get("/migration")
def get_migration() -> Response:
    return jsonify(_migration_json())


@bp.get("/migration/traffic")
def migration_traffic() -> Response:
    """Tokens per UTC day, the last 30 days: HS256 accepted and exchanged, tokens issued
    (the numbers of the admin page's chart), and the sunset."""
    until = state.settings().legacy_accept_until
    traffic = migration_chart.daily_traffic(db.session(), state.now().date())
    return jsonify(legacy_accept_until=_when(until), days=[
        {"day": t.day.isoformat(), "hs256_accepted": t.hs256_accepted,
         "hs256_exchanged": t.exchanged, "tokens_issued": t.issued} for t in traffic])


@bp.put("/migration")
def set_migration() -> Response:
    body = load_json(PhaseSchema())
    actions.set_phase(body["phase"])
    return jsonify(_migration_json())


@bp.get("/audit")
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


def _client_json(client: ServiceClient) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    previous_until = client.previous_secret_expires_at
    if previous_until is not None and previous_until <= state.now():
        previous_until = None  # the overlap is over: only the current secret works
    return {"client_id": client.client_id, "name": client.name, "scopes": client.scopes,
            "created_at": when(client.created_at),
            "secret_rotated_at": when(client.secret_rotated_at),
            "previous_secret_valid_until": when(previous_until)}


@bp.get("/clients")
def list_clients() -> Response:
    """Service clients of /oauth/introspect and /oauth/revoke (never their secrets)."""
    return jsonify(clients=[_client_json(c) for c in client_service.list_clients(db.session())])


def _with_secret(client: ServiceClient, secret: str) -> Response:
    response = jsonify(**_client_json(client), client_secret=secret)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/clients")
def create_client() -> tuple[Response, int]:
    """Register a client; its secret is in this answer only."""
    body = load_json(ClientCreateSchema())
    return _with_secret(*actions.create_client(body["name"], body["scopes"])), 201


@bp.post("/clients/<client_id>/rotate-secret")
def rotate_client_secret(client_id: str) -> Response:
    """A new secret (in this answer only); the old one works for CLIENT_SECRET_OVERLAP."""
    return _with_secret(*actions.rotate_client_secret(client_id))


@bp.patch("/clients/<client_id>")
def update_client(client_id: str) -> Response:
    """Set the client's scopes."""
    body = load_json(ClientUpdateSchema())
    return jsonify(_client_json(actions.set_client_scopes(client_id, body["scopes"])))


@bp.delete("/clients/<client_id>")
def delete_client(client_id: str) -> Response:
    """Remove the client; its secrets stop working at once."""
    actions.delete_client(client_id)
    return jsonify(deleted=client_id)
