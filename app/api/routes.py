"""Protected resources (SPEC §8). Every route here needs a token unless marked public."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.errors import InvalidToken
from app.extensions import db
from app.models import User
from app.security import current_principal
from app.security.guards import protect_blueprint

bp = Blueprint("api", __name__, url_prefix="/api")
protect_blueprint(bp)


@bp.get("/me")
def me() -> Response:
    """Who the token says you are."""
    principal = current_principal()
    user = db.session.get(User, principal.user_id)
    if user is None:
        raise InvalidToken("unknown_subject")
    return jsonify(
        sub=str(user.id),
        username=user.username,
        roles=sorted(principal.roles),
        scope=" ".join(sorted(principal.scopes)),
        sid=principal.session_id,
        acr=principal.acr,
        amr=list(principal.amr),
        auth_time=principal.auth_time,
        legacy=principal.legacy,
    )
