"""The passkey JSON API (issue 22): ceremonies for clients with their own UI, and a
user's passkeys listed, named and removed.

Each ceremony is two calls: ``.../options`` gives what ``navigator.credentials``
needs (its challenge stored server-side, bound to the session or the
mfa_token), and the answer goes to the matching route.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..audit import audit
from ..auth.flows import PasswordChangeNeeded
from ..auth.routes import password_change_response, session_response
from ..auth.schemas import EmptySchema, PasswordChangeRequiredSchema, SessionIssuedSchema
from ..config import STEP_UP_MAX_AGE
from ..core import passkey_store
from ..errors import NotFound
from ..extensions import db
from ..http import load_json
from ..models import Passkey
from ..ratelimit import MFA_VERIFY, PASSKEY_OPTIONS, STEP_UP
from ..route_facts import route_facts
from ..security import current_principal
from ..security.guards import require_auth, require_mfa
from . import passkey_flows as flows
from .passkey_schemas import (
    PasskeyCredentialSchema,
    PasskeyLoginOptionsSchema,
    PasskeyLoginSchema,
    PasskeyOptionsSchema,
    PasskeyOutSchema,
    PasskeyRegisterOptionsSchema,
    PasskeyRegisterSchema,
    PasskeyRemovedSchema,
    PasskeyRenamedSchema,
    PasskeyRenameSchema,
    PasskeysSchema,
)
from .routes import stepped_up_response
from .schemas import SteppedUpSchema

__all__ = ["bp", "passkey_json"]

bp = Blueprint("passkeys", __name__)


def passkey_json(passkey: Passkey) -> dict[str, Any]:
    """What a passkey's owner (or an admin) sees of it: never the key or its credential id."""
    return {"id": passkey.id, "name": passkey.name,
            "kind": "swk" if passkey.backup_eligible else "hwk",
            "transports": passkey.transports, "created_at": passkey.created_at.isoformat(),
            "last_used_at": passkey.last_used_at.isoformat() if passkey.last_used_at else None}


def _options(options: dict[str, Any]) -> Response:
    response = jsonify(publicKey=options)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/mfa/passkeys")
@route_facts(response=PasskeysSchema)
@require_auth
def list_passkeys() -> Response:
    """The caller's passkeys, oldest first."""
    user_id = current_principal().user_id
    return jsonify(passkeys=[passkey_json(p) for p in
                             passkey_store.list_passkeys(db.session(), user_id)])


@bp.post("/mfa/passkeys/register/options")
@route_facts(body=PasskeyRegisterOptionsSchema, response=PasskeyOptionsSchema)
@require_auth
def register_options() -> Response:
    """Options for navigator.credentials.create(): needs the password, or a recent step-up
    when the caller already has a second factor."""
    body = load_json(PasskeyRegisterOptionsSchema())
    return _options(flows.begin_registration(current_principal(), body["current_password"]))


@bp.post("/mfa/passkeys")
@route_facts(body=PasskeyRegisterSchema, response=PasskeyOutSchema, status=201)
@require_auth
def register() -> tuple[Response, int]:
    """Store the passkey created for the options just given (named ``name``)."""
    body = load_json(PasskeyRegisterSchema())
    passkey = flows.finish_registration(current_principal(), body["credential"], body["name"])
    return jsonify(passkey_json(passkey)), 201


@bp.patch("/mfa/passkeys/<id:passkey_id>")
@route_facts(body=PasskeyRenameSchema, response=PasskeyRenamedSchema)
@require_auth
def rename_passkey(passkey_id: int) -> Response:
    """Rename one of the caller's passkeys."""
    body = load_json(PasskeyRenameSchema())
    user_id = current_principal().user_id
    if not passkey_store.rename_passkey(db.session(), user_id, passkey_id, body["name"]):
        raise NotFound("No such passkey.")
    audit("PASSKEY_RENAMED", user_id=user_id, details={"passkey_id": passkey_id,
                                                      "name": body["name"]})
    return jsonify(id=passkey_id, name=body["name"])


@bp.delete("/mfa/passkeys/<id:passkey_id>")
@route_facts(response=PasskeyRemovedSchema)
@require_mfa(max_age=STEP_UP_MAX_AGE)
def remove_passkey(passkey_id: int) -> Response:
    """Remove one of the caller's passkeys (needs a recent step-up)."""
    user_id = current_principal().user_id
    if not passkey_store.remove_passkey(db.session(), user_id, passkey_id):
        raise NotFound("No such passkey.")
    audit("PASSKEY_REMOVED", user_id=user_id, details={"passkey_id": passkey_id})
    return jsonify(removed=True, id=passkey_id)


@bp.post("/mfa/passkeys/step-up/options")
@route_facts(response=PasskeyOptionsSchema, limits=(PASSKEY_OPTIONS,))
@require_auth
def step_up_options() -> Response:
    """Options for navigator.credentials.get() to step this session up."""
    if request.content_length:  # no body needed; one sent must be an empty object
        load_json(EmptySchema())
    return _options(flows.begin_step_up(current_principal()))


@bp.post("/mfa/passkeys/step-up")
@route_facts(body=PasskeyCredentialSchema, response=SteppedUpSchema, limits=(STEP_UP,),
             limited_in_view=True)
@require_auth
def step_up() -> Response:
    """A passkey gives a new aal2 access token with a fresh auth_time (RFC 9470)."""
    body = load_json(PasskeyCredentialSchema())
    return stepped_up_response(*flows.step_up(current_principal(), body["credential"]))


@bp.post("/auth/mfa/passkey/options")
@route_facts(body=PasskeyLoginOptionsSchema, response=PasskeyOptionsSchema, public=True,
             limits=(PASSKEY_OPTIONS,))
def login_options() -> Response:
    """Options to answer a login's MFA challenge with a passkey (the mfa_token binds them)."""
    body = load_json(PasskeyLoginOptionsSchema())
    return _options(flows.begin_login(body["mfa_token"]))


@bp.post("/auth/mfa/passkey")
@route_facts(body=PasskeyLoginSchema,
             response=(SessionIssuedSchema, PasswordChangeRequiredSchema), public=True,
             limits=(MFA_VERIFY,), limited_in_view=True)
def login() -> Response:
    """Second step of a login by passkey: the mfa_token and the passkey's answer."""
    body = load_json(PasskeyLoginSchema())
    outcome = flows.complete_login(body["mfa_token"], body["credential"])
    if isinstance(outcome, PasswordChangeNeeded):
        return password_change_response(outcome)
    return session_response(outcome)
