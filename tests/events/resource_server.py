"""A resource server on the verifier package (``Verifier``, ``TesseraAuth``) with the
revocation feed, run as its own process by the feed's acceptance tests
(``python resource_server.py``, settings in the environment).

Routes: ``/readyz`` (200 once the feed caught up), ``/notes`` (protected),
``/payout`` (protected, revocation-sensitive), ``/stats`` (the feed's counters).
Refusals carry their reason code in ``X-Test-Reason`` (for the tests only: the
package never tells a client why).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify
from tessera_verifier.feed import RevocationFeed
from tessera_verifier.flask import AuthError, TesseraAuth
from tessera_verifier.introspection import Introspector
from tessera_verifier.verifier import Verifier
from werkzeug.serving import make_server


def build(env: dict[str, str]) -> tuple[Flask, RevocationFeed]:
    """The app and its started feed."""
    base = env["RS_TESSERA_URL"]
    verifier = Verifier("http://localhost", "http://localhost/api",
                        jwks_url=base + "/.well-known/jwks.json")
    introspector = None
    if env.get("RS_INTROSPECT_ID"):
        introspector = Introspector(base + "/oauth/introspect", env["RS_INTROSPECT_ID"],
                                    env["RS_INTROSPECT_SECRET"], cache_seconds=0)
    feed = RevocationFeed(
        "http://localhost", env["RS_CLIENT_ID"], env["RS_CLIENT_SECRET"],
        poll_url=env.get("RS_POLL_URL", base + "/ssf/poll"), jwks=verifier.jwks,
        state_path=Path(env["RS_STATE_PATH"]), stale_after=float(env.get("RS_STALE_AFTER", "30")),
        stale_policy=env.get("RS_POLICY", "refuse"), introspector=introspector).start()
    app = Flask(__name__)
    auth = TesseraAuth(app, verifier=verifier, feed=feed, introspector=introspector)

    @app.errorhandler(AuthError)
    def refused(exc: AuthError) -> Response:
        response = auth._render(exc)
        response.headers["X-Test-Reason"] = exc.reason or ""
        return response

    @app.get("/readyz")
    def readyz() -> Any:
        return (jsonify(ready=True), 200) if feed.ready() else (jsonify(ready=False), 503)

    @app.get("/notes")
    @auth.require()
    def notes() -> Any:
        return jsonify(ok=True)

    @app.get("/payout")
    @auth.require(revocation_sensitive=True)
    def payout() -> Any:
        return jsonify(ok=True)

    @app.get("/stats")
    def stats() -> Any:
        return jsonify(**feed.stats, entries=len(feed.denylist), stale=feed.stale(),
                       rejections=dict(auth.rejections))

    return app, feed


if __name__ == "__main__":
    application, _ = build(dict(os.environ))
    server = make_server("127.0.0.1", int(os.environ["RS_PORT"]), application, threaded=True)
    print("resource server ready", flush=True)
    server.serve_forever()
