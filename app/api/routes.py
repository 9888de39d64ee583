"""Protected resources (SPEC §8). Every route here needs a token unless marked public."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import select

from .. import state
from ..accounts import principal_user
from ..config import STEP_UP_MAX_AGE
from ..errors import InvalidToken, NotFound
from ..extensions import db
from ..http import load_json
from ..models import AuthSession, Note, User
from ..route_facts import route_facts
from ..security import current_principal
from ..security.guards import protect_blueprint, require_mfa, require_scopes
from .schemas import (
    DeletedNoteSchema,
    ExportSchema,
    MeSchema,
    NoteOutSchema,
    NoteSchema,
    NotesSchema,
)

bp = Blueprint("api", __name__, url_prefix="/api")
protect_blueprint(bp)



def _me() -> User:
    return principal_user(current_principal(), InvalidToken("unknown_subject"))


_USERNAMES = "tessera.usernames"
_USERNAMES_MAX = 100_000


def _username(user_id: int) -> str:
    """Usernames never change once created, so each worker remembers them (bounded)."""
    names: dict[int, str] = current_app.extensions.setdefault(_USERNAMES, {})
    name = names.get(user_id)
    if name is None:
        name = _me().username
        if len(names) >= _USERNAMES_MAX:
            names.clear()
        names[user_id] = name
    return name


@bp.get("/me")
@route_facts(response=MeSchema)
def me() -> Response:
    """Who the token says you are."""
    principal = current_principal()
    return jsonify(
        sub=str(principal.user_id),
        username=_username(principal.user_id),
        roles=sorted(principal.roles),
        scope=" ".join(sorted(principal.scopes)),
        sid=principal.session_id,
        acr=principal.acr,
        amr=list(principal.amr),
        auth_time=principal.auth_time,
        legacy=principal.legacy,
    )


def _note_json(note: Note) -> dict[str, Any]:
    return {"id": note.id, "title": note.title, "body": note.body,
            "created_at": note.created_at.isoformat()}


def _own_note(note_id: int) -> Note:
    """The caller's note; someone else's is 404, so its existence does not leak."""
    note = db.session.get(Note, note_id)
    if note is None or note.user_id != current_principal().user_id:
        raise NotFound("No such note.")
    return note


@bp.get("/notes")
@route_facts(response=NotesSchema)
@require_scopes("notes:read")
def list_notes() -> Response:
    """The caller's notes, newest first."""
    rows = db.session.scalars(select(Note).where(Note.user_id == current_principal().user_id)
                              .order_by(Note.id.desc()))
    return jsonify(notes=[_note_json(n) for n in rows])


@bp.post("/notes")
@route_facts(body=NoteSchema, response=NoteOutSchema, status=201)
@require_scopes("notes:write")
def create_note() -> tuple[Response, int]:
    """Add a note owned by the caller."""
    body = load_json(NoteSchema())
    note = Note(user_id=current_principal().user_id, title=body["title"], body=body["body"],
                created_at=state.now())
    db.session.add(note)
    db.session.commit()
    return jsonify(_note_json(note)), 201


@bp.get("/notes/<id:note_id>")
@route_facts(response=NoteOutSchema)
@require_scopes("notes:read")
def get_note(note_id: int) -> Response:
    return jsonify(_note_json(_own_note(note_id)))


@bp.delete("/notes/<id:note_id>")
@route_facts(response=DeletedNoteSchema)
@require_scopes("notes:write")
def delete_note(note_id: int) -> Response:
    note = _own_note(note_id)
    db.session.delete(note)
    db.session.commit()
    return jsonify(deleted=note_id)


@bp.post("/account/export")
@route_facts(response=ExportSchema)
@require_mfa(max_age=STEP_UP_MAX_AGE)
def export_account() -> Response:
    """Everything we hold about the caller (sensitive: needs a recent MFA)."""
    user = _me()
    notes = db.session.scalars(select(Note).where(Note.user_id == user.id))
    sessions = db.session.scalars(select(AuthSession).where(AuthSession.user_id == user.id))
    response = jsonify(
        user={"id": user.id, "username": user.username, "roles": user.roles,
              "created_at": user.created_at.isoformat()},
        notes=[_note_json(n) for n in notes],
        sessions=[{"id": s.id, "created_at": s.created_at.isoformat(), "ip": s.ip,
                   "user_agent": s.user_agent} for s in sessions],
    )
    response.headers["Cache-Control"] = "no-store"
    return response
