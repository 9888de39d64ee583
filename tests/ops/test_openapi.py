"""The OpenAPI document covers every JSON route, and a bounded schemathesis fuzz finds no 500."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.actions import AuthActions
from tests.support.tokens import make_user

EXAMPLES = 12  # per operation and mode: bounded, so CI stays quick
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    app = make_app(COOKIE_SECURE=False, RATELIMIT_LOGIN_PER_IP="10000/minute",
                   RATELIMIT_LOGIN_PER_USERNAME="10000/minute", RATELIMIT_MFA="10000/minute",
                   RATELIMIT_REFRESH="10000/minute", RATELIMIT_EXCHANGE="10000/minute")
    make_user(app, "root", roles=("admin",))
    make_user(app, "alice")
    return app


def test_every_json_route_is_documented(app) -> None:  # type: ignore[no-untyped-def]
    document = app.test_client().get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("web."):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in document["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = document["paths"][path][method.lower()]
            assert "400" in operation["responses"] and "401" in operation["responses"]
    login = document["paths"]["/auth/login"]["post"]["requestBody"]["content"]
    schema_ref = login["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(document["components"]["schemas"][schema_ref]["properties"]) == {
        "username", "password"}


def _operations(schema):  # type: ignore[no-untyped-def]
    """Admin changes last, so that the fuzz does not disable its own admin early."""
    operations = [result.ok() for result in schema.get_all_operations()]
    return sorted(operations, key=lambda op: (op.path.startswith("/admin"),
                                              op.method.upper() != "GET", op.path))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fuzz_finds_no_server_error(app) -> None:  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures: list[str] = []

    for operation in _operations(schema):
        token = AuthActions(app.test_client()).login(username="root").get_json()
        headers = {"Authorization": f"Bearer {token['access_token']}"} if token and \
            "access_token" in token else {}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:  # type: ignore[no-untyped-def]
                # run() is called within this iteration, so `headers` is this one's (B023).
                case.call_and_validate(headers=headers, checks=CHECKS)  # noqa: B023

            try:
                run()
            except Unsatisfiable:
                continue  # nothing to make invalid: no body, query or path parameters
            except Exception as exc:  # noqa: BLE001 - collected and reported together below
                failures.append(f"{operation.method.upper()} {operation.path} [{mode.value}]: "
                                f"{str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)
