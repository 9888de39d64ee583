"""SPEC §9 error model: every error is JSON with a request id and no traceback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify
from marshmallow import Schema, fields

from app.http import load_json


class EchoSchema(Schema):
    name = fields.String(required=True)
    count = fields.Integer()


def _test_routes() -> Blueprint:
    bp = Blueprint("testonly", __name__)

    @bp.post("/_test/echo")
    def echo() -> Any:
        return jsonify(load_json(EchoSchema()))

    @bp.get("/_test/boom")
    def boom() -> Any:
        raise RuntimeError("secret internal detail")

    return bp


@pytest.fixture
def client(make_app):  # type: ignore[no-untyped-def]
    app: Flask = make_app(MAX_CONTENT_LENGTH=1024)
    app.register_blueprint(_test_routes())
    return app.test_client()


def _assert_error(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body  # type: ignore[no-any-return]


def test_unknown_route_is_json_404(client) -> None:  # type: ignore[no-untyped-def]
    _assert_error(client.get("/no/such/route"), 404, "not_found")


def test_wrong_method_is_json_405_with_allow(client) -> None:  # type: ignore[no-untyped-def]
    response = client.delete("/healthz")
    _assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_body_over_limit_is_json_413(client) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"name": "x" * 4096})
    response = client.post("/_test/echo", data=body, content_type="application/json")
    _assert_error(response, 413, "payload_too_large")


def test_non_json_body_is_415(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/_test/echo", data="name=x", content_type="text/plain")
    _assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("raw", ['{"name": ', "[1, 2]", "null", "\xff\xfe"])
def test_malformed_json_is_400(client, raw: str) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/_test/echo", data=raw, content_type="application/json")
    _assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"name": "a", "extra": 1}, "extra", "Unknown field."),
        ({"count": 1}, "name", "Missing data for required field."),
        ({"name": 5}, "name", "Not a valid string."),
        ({"name": "a", "count": "many"}, "count", "Not a valid integer."),
    ],
)
def test_validation_errors_name_the_field(client, payload, field, message) -> None:  # type: ignore[no-untyped-def]
    body = _assert_error(client.post("/_test/echo", json=payload), 400, "invalid_request")
    assert body["details"] == {field: [message]}


def test_valid_body_passes(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/_test/echo", json={"name": "a", "count": 2})
    assert response.status_code == 200
    assert response.get_json() == {"name": "a", "count": 2}


def test_exception_in_view_is_json_500_without_details(client, caplog) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/_test/boom", headers={"X-Request-ID": "req-123"})
    body = _assert_error(response, 500, "server_error")
    assert body["request_id"] == "req-123"
    assert "secret internal detail" not in response.get_data(as_text=True)
    # The log keeps what the body hides, keyed by the request id.
    assert any("req-123" in r.getMessage() and r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    ("offered", "kept"),
    [("abc-123_X.y", True), ("", False), ("x" * 65, False), ("evil\nheader", False),
     ("a b", False)],
)
def test_request_id_taken_only_when_well_formed(client, offered: str, kept: bool) -> None:  # type: ignore[no-untyped-def]
    headers = {"X-Request-ID": offered} if "\n" not in offered else {}
    response = client.get("/healthz", headers=headers)
    rid = response.headers["X-Request-ID"]
    assert (rid == offered) is kept
    assert 1 <= len(rid) <= 64


# --- issue 16 item 6: JSON nested past a sane depth is a 400, never a RecursionError's 500

def _nested(depth: int) -> str:
    """A JSON object ``depth`` levels deep (the object itself is level 1), arrays and objects."""
    inner = depth - 1
    opening = "".join("[" if n % 2 else '{"a":' for n in range(inner))
    closing = "".join("]" if n % 2 else "}" for n in reversed(range(inner)))
    return '{"x":' + opening + "0" + closing + "}"


@pytest.fixture
def routes(make_app):  # type: ignore[no-untyped-def]
    """An app with registration on, a user, an admin, and their bearer headers."""
    from tests.support.tokens import bearer, issue, make_user

    app = make_app(REGISTRATION_ENABLED=True)
    user, admin = make_user(app, "alice"), make_user(app, "root", roles=("admin",))
    return app, {"user": bearer(issue(app, user)),
                 "admin": bearer(issue(app, admin, roles=["admin"]))}


JSON_ROUTES = [  # (path, whose token): every JSON route with a body, anonymous or not
    ("/auth/login", None), ("/auth/mfa/verify", None), ("/auth/register", None),
    ("/auth/password", "user"), ("/mfa/step-up", "user"), ("/mfa/totp/confirm", "user"),
    ("/api/notes", "user"), ("/admin/api/users", "admin"), ("/admin/api/tokens/revoke", "admin"),
]
TOO_DEEP = {"error": "invalid_request", "message": "The request body nests deeper than 32 levels.",
            "details": {}}


@pytest.mark.parametrize("depth", [33, 100, 990, 5_000, 12_000])
@pytest.mark.parametrize(("path", "who"), JSON_ROUTES)
def test_json_nested_too_deeply_is_400(routes, path: str, who: str | None, depth: int) -> None:  # type: ignore[no-untyped-def]
    app, headers = routes
    body = _nested(depth)
    assert len(body) < 65536  # under MAX_CONTENT_LENGTH: the depth is what is refused
    response = app.test_client().post(path, data=body, content_type="application/json",
                                      headers=headers[who] if who else {})
    assert response.status_code == 400
    assert response.get_json() == {**TOO_DEEP, "request_id": response.headers["X-Request-ID"]}


@pytest.mark.parametrize(("path", "who"), JSON_ROUTES)
def test_json_at_the_depth_limit_reaches_validation(routes, path: str, who: str | None) -> None:  # type: ignore[no-untyped-def]
    app, headers = routes
    response = app.test_client().post(path, data=_nested(32), content_type="application/json",
                                      headers=headers[who] if who else {})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request" and "x" in body["details"]  # an unknown field


def test_nesting_depth_counts_outside_strings_only() -> None:
    from app.core.json_depth import nesting_exceeds

    assert not nesting_exceeds('{"a":"' + "[{" * 40 + '"}', 32)  # brackets inside a string
    assert not nesting_exceeds('["\\"' + "[" * 40 + '", 1]', 32)  # after an escaped quote
    assert not nesting_exceeds(_nested(32), 32)
    assert nesting_exceeds(_nested(33), 32)
    assert not nesting_exceeds(("[" * 20 + "]" * 20 + ",") * 10, 32)  # many, none deep
    assert nesting_exceeds(_nested(33).encode("utf-16"), 32)  # json reads UTF-16 too
