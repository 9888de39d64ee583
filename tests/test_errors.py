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
    response = client.get("/healthz", headers={"X-Request-ID": offered} if "\n" not in offered else {})
    rid = response.headers["X-Request-ID"]
    assert (rid == offered) is kept
    assert 1 <= len(rid) <= 64
