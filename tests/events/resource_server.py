"""A resource server on the verifier package with the revocation feed, run as its own
process by the feed's acceptance tests (``python resource_server.py``, settings in the
environment). Tokens are checked with PyJWT against the keys of the package's
JwksCache (signature, iss, aud, exp), then against the feed's denylist.

Routes: ``/readyz`` (200 once the feed caught up), ``/notes`` (protected),
``/payout`` (protected, revocation-sensitive), ``/stats`` (the feed's counters).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import jwt
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "verifier" / "src"))

from tessera_verifier.feed import RevocationFeed
from tessera_verifier.introspection import Introspector
from tessera_verifier.jwks import JwksCache


def build(env: dict[str, str]) -> tuple[Flask, RevocationFeed]:
    """The app and its started feed."""
    base = env["RS_TESSERA_URL"]
    jwks = JwksCache(base + "/.well-known/jwks.json")
    introspector = None
    if env.get("RS_INTROSPECT_ID"):
        introspector = Introspector(base + "/oauth/introspect", env["RS_INTROSPECT_ID"],
                                    env["RS_INTROSPECT_SECRET"], cache_seconds=0)
    feed = RevocationFeed(
        "http://localhost", env["RS_CLIENT_ID"], env["RS_CLIENT_SECRET"],
        poll_url=env.get("RS_POLL_URL", base + "/ssf/poll"), jwks=jwks,
        state_path=Path(env["RS_STATE_PATH"]), stale_after=float(env.get("RS_STALE_AFTER", "30")),
        stale_policy=env.get("RS_POLICY", "refuse"), introspector=introspector).start()
    app = Flask(__name__)

    def _guard(sensitive: bool) -> tuple[Any, int] | None:
        raw = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            header = jwt.get_unverified_header(raw)
            key = jwks.get(str(header.get("kid")))
            if key is None:
                return jsonify(error="invalid_token", reason="unknown_kid"), 401
            claims = jwt.decode(raw, jwt.PyJWK(key).key, algorithms=["ES256"],
                                audience="http://localhost/api", issuer="http://localhost")
        except jwt.PyJWTError as exc:
            return jsonify(error="invalid_token", reason=type(exc).__name__), 401
        reason = feed.check(claims, header, raw, sensitive=sensitive)
        if reason is not None:
            return jsonify(error="invalid_token", reason=reason), 401
        return None

    @app.get("/readyz")
    def readyz() -> Any:
        return (jsonify(ready=True), 200) if feed.ready() else (jsonify(ready=False), 503)

    @app.get("/notes")
    def notes() -> Any:
        return _guard(False) or jsonify(ok=True)

    @app.get("/payout")
    def payout() -> Any:
        return _guard(True) or jsonify(ok=True)

    @app.get("/stats")
    def stats() -> Any:
        return jsonify(**feed.stats, entries=len(feed.denylist), stale=feed.stale())

    return app, feed


if __name__ == "__main__":
    application, _ = build(dict(os.environ))
    server = make_server("127.0.0.1", int(os.environ["RS_PORT"]), application, threaded=True)
    print("resource server ready", flush=True)
    server.serve_forever()
