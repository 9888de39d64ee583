"""The admin page's service clients (SPEC §8): register, rotate a secret, set scopes, delete.

A new secret is shown in the answer that made it, once; every other change
redirects to the admin page with a notice.
"""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from ..admin import actions
from ..core import clients as client_service
from ..core.errors import CoreError
from ..errors import ValidationFailed
from .admin import admin_page, changing_admin, done, first_detail
from .pages import Notice, bp

__all__: list[str] = []


def _scopes_from_form() -> list[str]:
    return [s for s in client_service.CLIENT_SCOPES if request.form.get(f"scope_{s}") == "1"]


@bp.post("/admin/clients")
def admin_create_client() -> tuple[str, int]:
    """Register a service client; its secret is shown in this answer only."""
    me = changing_admin()
    try:
        client, secret = actions.create_client(request.form.get("name", "").strip(),
                                               _scopes_from_form())
    except (ValidationFailed, CoreError) as exc:
        return admin_page(me, status=400, notice=Notice("error", first_detail(exc)))
    return admin_page(me, notice=Notice("info", "The client is registered."),
                       client_secret=secret, secret_for=client.client_id)


@bp.post("/admin/clients/<client_id>/rotate-secret")
def admin_rotate_client_secret(client_id: str) -> tuple[str, int]:
    """A new secret, shown once; the old one keeps working for the overlap."""
    me = changing_admin()
    client, secret = actions.rotate_client_secret(client_id)
    return admin_page(me, notice=Notice("info", "The client's secret is rotated."),
                       client_secret=secret, secret_for=client.client_id)


@bp.post("/admin/clients/<client_id>/scopes")
def admin_set_client_scopes(client_id: str) -> Response | tuple[str, int]:
    me = changing_admin()
    try:
        actions.set_client_scopes(client_id, _scopes_from_form())
    except (ValidationFailed, CoreError) as exc:
        return admin_page(me, status=400, notice=Notice("error", first_detail(exc)))
    return done("client_updated")


@bp.post("/admin/clients/<client_id>/delete")
def admin_delete_client(client_id: str) -> Response:
    changing_admin()
    actions.delete_client(client_id)
    return done("client_deleted")
