"""The peer: the same protected call with flask-jwt-extended, ES256 and a Redis blocklist.

Configured from the environment by bench/http_load.py: BENCH_PUBLIC_KEY / BENCH_PRIVATE_KEY
(PEM files), BENCH_REDIS_URL. Bench-only; not part of Tessera.
"""

from __future__ import annotations

import os
from pathlib import Path

import redis
from flask import Flask, jsonify
from flask_jwt_extended import JWTManager, create_access_token, get_jwt, jwt_required


def create_reference_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        JWT_ALGORITHM="ES256",
        JWT_PUBLIC_KEY=Path(os.environ["BENCH_PUBLIC_KEY"]).read_text(),
        JWT_PRIVATE_KEY=Path(os.environ["BENCH_PRIVATE_KEY"]).read_text(),
        JWT_DECODE_AUDIENCE="http://127.0.0.1/api",
        JWT_ENCODE_AUDIENCE="http://127.0.0.1/api",
        JWT_ENCODE_ISSUER="http://127.0.0.1",
        JWT_DECODE_ISSUER="http://127.0.0.1",
        JWT_TOKEN_LOCATION=["headers"],
    )
    jwt = JWTManager(app)
    blocklist = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])

    @jwt.token_in_blocklist_loader
    def revoked(_header: dict, payload: dict) -> bool:  # type: ignore[type-arg]
        return blocklist.get("ref:revoked:" + payload["jti"]) is not None

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        return jsonify(status="ok")

    @app.get("/api/me")
    @jwt_required()
    def me():  # type: ignore[no-untyped-def]
        claims = get_jwt()
        return jsonify(sub=claims["sub"], scope=claims.get("scope", ""))

    @app.post("/mint")
    def mint():  # type: ignore[no-untyped-def]
        return jsonify(access_token=create_access_token(identity="1"))

    return app


app = create_reference_app()
