"""Service clients from the admin API and the command line (issue 19): list, rotate the
secret with an overlap, scopes, delete; audited with the admin as actor, never a secret."""

from __future__ import annotations

import base64
import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from tests.support.actions import AuthActions
from tests.support.tokens import PASSWORD, bearer, make_user


@pytest.fixture
def app(make_app, clock):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, clock=clock, CLIENT_SECRET_OVERLAP=3600)
    make_user(app, "root", roles=("admin",))
    return app


def _admin(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return bearer(AuthActions(app.test_client()).login(username="root").get_json()["access_token"])


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _introspect(app, client_id: str, secret: str):  # type: ignore[no-untyped-def]
    token = AuthActions(app.test_client()).login(username="root").get_json()["access_token"]
    return app.test_client().post("/oauth/introspect", data={"token": token},
                                  headers=_basic(client_id, secret))


def test_create_list_rotate_with_overlap_and_delete(app, clock) -> None:  # type: ignore[no-untyped-def]
    client, admin = app.test_client(), _admin(app)
    created = client.post("/admin/api/clients", headers=admin, json={"name": "notes service"})
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    body = created.get_json()
    client_id, first = body["client_id"], body["client_secret"]
    assert body["scopes"] == ["introspect", "revoke"]
    assert _introspect(app, client_id, first).get_json()["active"] is True
    listed = client.get("/admin/api/clients", headers=admin).get_json()["clients"]
    assert [c["client_id"] for c in listed] == [client_id] and "client_secret" not in listed[0]

    rotated = client.post(f"/admin/api/clients/{client_id}/rotate-secret", headers=admin)
    second = rotated.get_json()["client_secret"]
    assert second != first and rotated.get_json()["previous_secret_valid_until"]
    assert _introspect(app, client_id, second).get_json()["active"] is True
    assert _introspect(app, client_id, first).get_json()["active"] is True  # the overlap
    clock.advance(3601)
    assert _introspect(app, client_id, first).status_code == 401  # overlap over
    assert _introspect(app, client_id, second).status_code == 200
    assert client.get("/admin/api/clients", headers=_admin(app)).get_json()["clients"][0][
        "previous_secret_valid_until"] is None

    third = client.post(f"/admin/api/clients/{client_id}/rotate-secret",
                        headers=_admin(app)).get_json()["client_secret"]
    fourth = client.post(f"/admin/api/clients/{client_id}/rotate-secret",
                         headers=_admin(app)).get_json()["client_secret"]
    assert _introspect(app, client_id, second).status_code == 401  # only the last two work
    assert _introspect(app, client_id, third).status_code == 200
    assert _introspect(app, client_id, fourth).status_code == 200

    deleted = client.delete(f"/admin/api/clients/{client_id}", headers=_admin(app))
    assert deleted.get_json() == {"deleted": client_id}
    assert _introspect(app, client_id, fourth).status_code == 401
    assert client.get("/admin/api/clients", headers=_admin(app)).get_json()["clients"] == []


def test_scopes_limit_the_endpoints(app) -> None:  # type: ignore[no-untyped-def]
    client, admin = app.test_client(), _admin(app)
    body = client.post("/admin/api/clients", headers=admin,
                       json={"name": "reader", "scopes": ["introspect"]}).get_json()
    auth = _basic(body["client_id"], body["client_secret"])
    token = AuthActions(app.test_client()).login(username="root").get_json()["access_token"]
    refused = client.post("/oauth/revoke", data={"token": token}, headers=auth)
    assert refused.status_code == 400 and refused.get_json()["error"] == "unauthorized_client"
    assert client.get("/api/me", headers=bearer(token)).status_code == 200  # not revoked
    changed = client.patch(f"/admin/api/clients/{body['client_id']}", headers=admin,
                           json={"scopes": ["revoke"]})
    assert changed.get_json()["scopes"] == ["revoke"]
    assert client.post("/oauth/introspect", data={"token": token},
                       headers=auth).get_json()["error"] == "unauthorized_client"
    assert client.post("/oauth/revoke", data={"token": token}, headers=auth).status_code == 200
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), [
    ("post", "/admin/api/clients", {"name": ""}, 400, "name"),
    ("post", "/admin/api/clients", {"name": "x", "scopes": ["admin"]}, 400, "scopes"),
    ("post", "/admin/api/clients", {"name": "x", "scopes": []}, 400, "scopes"),
    ("post", "/admin/api/clients", {"name": "x", "secret": "mine"}, 400, "secret"),
    ("patch", "/admin/api/clients/svc-nope", {"scopes": ["revoke"]}, 404, None),
    ("post", "/admin/api/clients/svc-nope/rotate-secret", None, 404, None),
    ("delete", "/admin/api/clients/svc-nope", None, 404, None),
])
def test_bad_requests_change_nothing(app, method: str, path: str, body: dict | None,  # type: ignore[type-arg]
                                     status: int, field: str | None) -> None:
    client, admin = app.test_client(), _admin(app)
    answer = client.open(path, method=method, headers=admin, json=body)
    assert answer.status_code == status, answer.get_json()
    if field:
        assert field in answer.get_json()["details"]
    assert client.get("/admin/api/clients", headers=admin).get_json()["clients"] == []


def test_client_changes_are_audited_without_secrets(app, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("DEBUG")
    client, admin = app.test_client(), _admin(app)
    body = client.post("/admin/api/clients", headers=admin, json={"name": "svc"}).get_json()
    client_id = body["client_id"]
    rotated = client.post(f"/admin/api/clients/{client_id}/rotate-secret", headers=admin)
    client.patch(f"/admin/api/clients/{client_id}", headers=admin, json={"scopes": ["revoke"]})
    client.delete(f"/admin/api/clients/{client_id}", headers=admin)
    client.delete(f"/admin/api/clients/{client_id}", headers=admin)  # gone: a failure row
    with app.app_context():
        rows = list(db.session.scalars(select(AuditEvent).where(
            AuditEvent.event.like("CLIENT_%")).order_by(AuditEvent.id)))
    assert [(r.event, r.result) for r in rows] == [
        ("CLIENT_CREATED", "success"), ("CLIENT_SECRET_ROTATED", "success"),
        ("CLIENT_UPDATED", "success"), ("CLIENT_DELETED", "success"),
        ("CLIENT_DELETED", "failure")]
    assert all(r.actor_id == 1 and r.details["client_id"] == client_id for r in rows)
    for secret in (body["client_secret"], rotated.get_json()["client_secret"], PASSWORD):
        assert secret not in str([r.details for r in rows]) and secret not in caplog.text


def test_client_commands(app) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    created = runner.invoke(args=["clients", "create", "svc", "--scope", "introspect"])
    client_id = re.search(r"client_id:\s+(\S+)", created.output).group(1)  # type: ignore[union-attr]
    first = re.search(r"client_secret:\s+(\S+)", created.output).group(1)  # type: ignore[union-attr]
    assert f"{client_id}  introspect" in runner.invoke(args=["clients", "list"]).output
    rotated = runner.invoke(args=["clients", "rotate-secret", client_id])
    second = re.search(r"client_secret:\s+(\S+)", rotated.output).group(1)  # type: ignore[union-attr]
    assert "previous secret works until" in rotated.output
    assert "old secret valid until" in runner.invoke(args=["clients", "list"]).output
    assert _introspect(app, client_id, first).status_code == 200
    assert _introspect(app, client_id, second).status_code == 200
    scopes = runner.invoke(args=["clients", "set-scopes", client_id, "--scope", "revoke",
                                 "--scope", "introspect"])
    assert scopes.output.strip() == f"{client_id}: introspect, revoke"
    assert runner.invoke(args=["clients", "set-scopes", client_id, "--scope", "x"]).exit_code
    assert runner.invoke(args=["clients", "delete", client_id]).exit_code == 0
    missing = runner.invoke(args=["clients", "delete", client_id])
    assert missing.exit_code != 0 and "No such client" in missing.output
