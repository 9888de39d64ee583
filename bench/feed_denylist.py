"""A protected request on a resource server with the revocation feed's denylist holding
100,000 entries against the same request with an empty one (issue 23, acceptance 5).

The resource server is a Flask app on the verifier package: ``TesseraAuth`` with a
``Verifier`` (keys from a JWKS served on loopback, fetched once) and the feed, so
each request verifies the bearer token (the package caches a verified token, as
it does in production) and asks the feed (key, jti, session and user cutoff, from
memory). The
full denylist holds 70,000 token ids, 20,000 sessions and 10,000 user cutoffs;
the token checked is in none of them, the case every allowed request pays.
Both apps are measured in turns (short batches, who goes first alternating) and
the ratio is the median of the per-pair ratios, as bench/revocation.py does.
Prints the rates and the ratio (goal: at most 1.2) and writes
bench/results/feed-denylist.json.
"""

from __future__ import annotations

import base64
import json
import statistics
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, jsonify
from tessera_verifier.flask import TesseraAuth
from tessera_verifier.verifier import Verifier

ROOT = Path(__file__).resolve().parents[1]

from tessera_verifier.feed import RevocationFeed

ISSUER, AUDIENCE = "http://localhost", "http://localhost/api"
ENTRIES = 100_000
_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's n
PAIRS, BATCH = 300, 50


def _feed(entries: int) -> RevocationFeed:
    feed = RevocationFeed(ISSUER, "svc-bench", "unused", poll_url="http://127.0.0.1:9/ssf/poll")
    until = time.time() + 3600
    for n in range(entries):
        kind = "jti" if n % 10 < 7 else "sid" if n % 10 < 9 else "user"
        feed.denylist.add(kind, uuid.uuid4().hex if kind != "user" else str(10**6 + n), until,
                          int(time.time()) if kind == "user" else 0)
    feed._caught_up.set()  # as after a catch-up: the bench has no Tessera to poll
    return feed


def _jwks_server(public_key: Any) -> ThreadingHTTPServer:
    """The JWKS on loopback, as Tessera serves it (the verifier fetches it once)."""
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public_key)), "kid": "k1",
           "alg": "ES256", "use": "sig"}
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=300")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _app(feed: RevocationFeed, jwks_url: str) -> Flask:
    app = Flask(__name__)
    verifier = Verifier(ISSUER, AUDIENCE, jwks_url=jwks_url, background=False)
    auth = TesseraAuth(app, verifier=verifier, feed=feed)

    @app.get("/notes")
    @auth.require()
    def notes() -> Any:
        return jsonify(ok=True)

    return app


def _low_s(token: str) -> str:
    """The token with its ES256 signature in low-S form, the only one Tessera's verifier
    accepts (as Tessera signs); PyJWT leaves S as ECDSA gave it."""
    head, body, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    s = min(s, _ORDER - s)
    fixed = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{head}.{body}.{base64.urlsafe_b64encode(fixed).rstrip(b'=').decode()}"


def _batch(client: Any, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    for _ in range(BATCH):
        assert client.get("/notes", headers=headers).status_code == 200
    return time.perf_counter() - started


def main() -> None:
    """Measure and print the bench line."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "42", "sid": uuid.uuid4().hex,
                        "jti": uuid.uuid4().hex, "iat": now, "nbf": now, "exp": now + 3600,
                        "client_id": "web", "scope": "notes:read", "roles": [],
                        "auth_time": now, "amr": ["pwd"], "acr": "aal1"},
                       key, algorithm="ES256", headers={"kid": "k1", "typ": "at+jwt"})
    token = _low_s(token)
    headers = {"Authorization": f"Bearer {token}"}
    empty_feed, full_feed = _feed(0), _feed(ENTRIES)
    jwks = _jwks_server(key.public_key())
    url = f"http://127.0.0.1:{jwks.server_address[1]}/.well-known/jwks.json"
    empty = _app(empty_feed, url).test_client()
    full = _app(full_feed, url).test_client()
    for client in (empty, full):
        _batch(client, headers)  # warm up
    ratios, times = [], {"empty": 0.0, "full": 0.0}
    for pair in range(PAIRS):
        order = [("empty", empty), ("full", full)][:: 1 if pair % 2 else -1]
        spent = {name: _batch(client, headers) for name, client in order}
        times["empty"] += spent["empty"]
        times["full"] += spent["full"]
        ratios.append(spent["full"] / spent["empty"])
    ratio = statistics.median(ratios)
    requests = PAIRS * BATCH
    result = {"entries": len(full_feed.denylist), "requests_each": requests,
              "empty_per_second": round(requests / times["empty"]),
              "full_per_second": round(requests / times["full"]), "ratio": round(ratio, 3),
              "goal": 1.2}
    print(f"feed denylist: {result['entries']} entries: {result['full_per_second']}/s, "
          f"empty: {result['empty_per_second']}/s, ratio {ratio:.3f} (goal <= 1.2)")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "feed-denylist.json").write_text(json.dumps(result, indent=2) + "\n")
    jwks.shutdown()
    if ratio > 1.2:
        sys.exit(1)


if __name__ == "__main__":
    main()
