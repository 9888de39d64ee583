"""The admin page's new forms without a browser (issue 19): roles, refusals as sentences,
secrets shown once in the answer and never in a URL, bad input changing nothing."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import ServiceClient, User
from tests.support.tokens import make_user
from tests.web.test_pages_review import _log_in, _notice, _post


@pytest.fixture
def app(make_app) -> Flask:  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False)
    make_user(app, "root", roles=("admin",))
    make_user(app, "alice")
    return app


def _roles(app: Flask, name: str) -> list[str]:
    with app.app_context():
        return db.session.scalars(select(User.roles).where(User.username == name)).one()


def test_roles_form_sets_roles_and_keeps_the_admin_s_own(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client, "root")
    done = _post(client, "/admin/users/2/roles", roles="editor, viewer")
    assert done.status_code == 303 and done.location == "/admin?n=user_updated"
    assert _roles(app, "alice") == ["editor", "viewer"]
    bad = _post(client, "/admin/users/2/roles", roles="Not A Role!")
    assert bad.status_code == 400 and _notice(bad).startswith("roles:")
    assert _roles(app, "alice") == ["editor", "viewer"]
    own = _post(client, "/admin/users/1/roles", roles="editor")
    assert own.status_code == 403 and "admin role from yourself" in _notice(own)
    assert _roles(app, "root") == ["admin"]


def test_secrets_are_shown_once_in_the_answer(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    _log_in(client, "root")
    answer = _post(client, "/admin/users/2/temporary-password")
    assert answer.status_code == 200 and 'id="temporary-password"' in answer.text
    registered = _post(client, "/admin/clients", name="svc", scope_introspect="1")
    assert registered.status_code == 200 and 'id="client-secret"' in registered.text
    with app.app_context():
        assert db.session.scalars(select(ServiceClient.scopes)).one() == ["introspect"]
    again = client.get("/admin")
    assert 'id="temporary-password"' not in again.text and 'id="client-secret"' not in again.text


@pytest.mark.parametrize(("path", "fields", "sentence"), [
    ("/admin/users", {"username": "x", "password": "correct horse battery staple"},
     "username:"),
    ("/admin/users", {"username": "carol", "password": "short"}, "password:"),
    ("/admin/users", {"username": "alice", "password": "correct horse battery staple"},
     "This username is taken."),
    ("/admin/clients", {"name": "svc"}, "scopes:"),
    ("/admin/clients", {"name": "bad/name", "scope_revoke": "1"}, "name:"),
    ("/admin/clients/svc-nope/scopes", {"scope_revoke": "1"}, "No such client."),
    ("/admin/users/99/reset-mfa", {}, "No such user."),
])
def test_refusals_are_sentences_and_change_nothing(app, path: str, fields: dict[str, str],
                                                   sentence: str) -> None:
    client = app.test_client()
    _log_in(client, "root")
    refused = _post(client, path, **fields)
    assert refused.status_code in (400, 404, 409), refused.status_code
    assert _notice(refused).startswith(sentence)
    with app.app_context():
        assert db.session.scalars(select(User.username).order_by(User.id)).all() == ["root",
                                                                                     "alice"]
        assert db.session.scalars(select(ServiceClient)).all() == []
