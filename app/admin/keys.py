"""The admin API's signing keys and HS256 migration (SPEC §4, §8), on the admin blueprint."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from .. import state
from ..core import key_report, migration, migration_chart
from ..extensions import db
from ..http import load_json
from ..models import SigningKey
from ..route_facts import route_facts
from ..security import keyops, snapshot
from . import actions
from .responses import (
    KeyListSchema,
    KeyOutSchema,
    MigrationSchema,
    RotatedSchema,
    TrafficSchema,
)
from .routes import bp
from .schemas import PhaseSchema, RotateSchema


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
@route_facts(response=KeyListSchema)
def list_keys() -> Response:
    """Every key with its age, rotation due date, retired keys' expiry, and the JWKS kids."""
    views = keyops.describe_signing_keys()
    return jsonify(keys=[_key_json(v.row, v) for v in views],
                   jwks_kids=keyops.published_kids())


@bp.post("/keys/rotate")
@route_facts(body=RotateSchema, response=RotatedSchema)
def rotate_keys() -> Response:
    body = load_json(RotateSchema()) if request.content_length else {"force": False}
    result = actions.rotate_keys(force=body["force"])
    return jsonify(active_kid=result.active_kid, retired_kid=result.retired_kid,
                   standby_kid=result.standby_kid)


@bp.post("/keys/<kid>/revoke")
@route_facts(response=KeyOutSchema)
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
@route_facts(response=MigrationSchema)
def get_migration() -> Response:
    return jsonify(_migration_json())


@bp.get("/migration/traffic")
@route_facts(response=TrafficSchema)
def migration_traffic() -> Response:
    """Tokens per UTC day, the last 30 days: HS256 accepted and exchanged, tokens issued
    (the numbers of the admin page's chart), and the sunset."""
    until = state.settings().legacy_accept_until
    traffic = migration_chart.daily_traffic(db.session(), state.now().date())
    return jsonify(legacy_accept_until=_when(until), days=[
        {"day": t.day.isoformat(), "hs256_accepted": t.hs256_accepted,
         "hs256_exchanged": t.exchanged, "tokens_issued": t.issued} for t in traffic])


@bp.put("/migration")
@route_facts(body=PhaseSchema, response=MigrationSchema)
def set_migration() -> Response:
    body = load_json(PhaseSchema())
    actions.set_phase(body["phase"])
    return jsonify(_migration_json())
