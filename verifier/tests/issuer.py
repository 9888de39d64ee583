"""A small stand-in for Tessera, served over real HTTP on 127.0.0.1 for the package's tests.

It signs ES256 access tokens (low S, as Tessera does), publishes its JWKS and
RFC 8414 metadata with ``Cache-Control`` and ``ETag``, answers RFC 7662
introspection, and counts the requests it gets. Only the standard library and
cryptography: the package's tests run with nothing but the package installed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ISSUER_AUDIENCE = "/api"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def hs256(secret: str, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """A token of the old system: HS256 with the shared secret."""
    return compact(header or {"alg": "HS256", "typ": "JWT"}, claims,
                   lambda m: hmac.new(secret.encode(), m, hashlib.sha256).digest())


class FakeTessera:
    """Keys, phase, introspection answers; all changeable by the test while it serves."""

    def __init__(self, *, max_age: int = 60, metadata_max_age: int = 60) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.max_age = max_age
        self.metadata_max_age = metadata_max_age
        self.phase = "dual"
        self.sunset: float | None = None
        self.revoked: set[str] = set()  # jtis introspection calls inactive
        self.requests: dict[str, int] = {}
        self.down = False  # answer 503 to everything
        self.delay = 0.0
        self.add_key("k1")
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def audience(self) -> str:
        return self.url + ISSUER_AUDIENCE

    @property
    def metadata_url(self) -> str:
        return self.url + "/.well-known/oauth-authorization-server"

    def add_key(self, kid: str) -> None:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            numbers = key.public_key().public_numbers()
            out.append({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                        "x": b64(numbers.x.to_bytes(32, "big")),
                        "y": b64(numbers.y.to_bytes(32, "big"))})
        return {"keys": out}

    def metadata(self) -> dict[str, Any]:
        accepted = self.phase != "asymmetric" and (self.sunset is None or time.time() < self.sunset)
        return {"issuer": self.url, "jwks_uri": self.url + "/jwks.json",
                "introspection_endpoint": self.url + "/introspect", "response_types_supported": [],
                "tessera_migration": {"phase": self.phase, "legacy_accepted": accepted,
                                      "legacy_sunset": int(self.sunset) if self.sunset else None}}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.audience, "sub": "7", "exp": now + 900, "nbf": now,
                  "iat": now, "jti": secrets.token_urlsafe(8), "client_id": "web", "sid": "s1",
                  "scope": "notes:read", "roles": [], "auth_time": now, "amr": ["pwd"],
                  "acr": "aal1"}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not ...}

    def token(self, kid: str = "k1", **overrides: Any) -> str:
        key = self.keys[kid]

        def sign(message: bytes) -> bytes:
            r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
            s = min(s, ORDER - s)  # low S, the only form accepted
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        header = {"alg": "ES256", "kid": kid, "typ": "at+jwt"}
        return compact(header, self.claims(**overrides), sign)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any] | None, max_age: int | None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                if body is not None and max_age is not None \
                        and self.headers.get("If-None-Match") == etag:
                    status, data = 304, b""
                self.send_response(status)
                if max_age is not None:
                    self.send_header("Cache-Control", f"public, max-age={max_age}")
                    self.send_header("ETag", etag)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _count(self) -> bool:
                fake.requests[self.path] = fake.requests.get(self.path, 0) + 1
                time.sleep(fake.delay)
                if fake.down:
                    self._send(503, {"error": "unavailable"}, None)
                return not fake.down

            def do_GET(self) -> None:
                if not self._count():
                    return
                if self.path == "/jwks.json":
                    self._send(200, fake.jwks(), fake.max_age)
                elif self.path == "/.well-known/oauth-authorization-server":
                    self._send(200, fake.metadata(), fake.metadata_max_age)
                else:
                    self._send(404, {"error": "not_found"}, None)

            def do_POST(self) -> None:
                if not self._count():
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(p.split("=", 1) for p in self.rfile.read(length).decode().split("&"))
                token = form.get("token", "")
                try:
                    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
                except (ValueError, IndexError):
                    payload = {}
                active = bool(payload) and payload.get("jti") not in fake.revoked
                self._send(200, {"active": active}, None)

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
