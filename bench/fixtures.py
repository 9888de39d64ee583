"""What the HTTP bench's loads need: migrated databases, the bench user, tokens, sessions.

SQLite is a file of the run's temporary directory; PostgreSQL (BENCH_DATABASE_URL,
the throw-away server scripts/bench.sh starts, fsync on) gets a database of its
own for this bench, so that the revocation bench's million rows stay out of it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from http.cookies import SimpleCookie
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.support.http import call
from tests.support.servers import AppServer

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple at speed"
KEK = base64.urlsafe_b64encode(b"h" * 32).decode()
ISSUER = "http://127.0.0.1"


def postgres_database(server_url: str, name: str) -> str:
    """A new, empty database ``name`` on the PostgreSQL server of ``server_url``."""
    engine = create_engine(server_url.replace("postgresql://", "postgresql+psycopg://", 1),
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


def prepare_database(url: str, tmp: Path, issuer: str = ISSUER) -> str:
    """Migrate ``url``, make the signing keys and the bench user, with the CLI."""
    env = {**os.environ, "FLASK_APP": "wsgi", "TESSERA_DATABASE_URL": url,
           "TESSERA_KEY_ENCRYPTION_KEY": KEK, "TESSERA_INSTANCE_PATH": str(tmp),
           "TESSERA_ISSUER": issuer}
    flask = str(Path(sys.executable).parent / "flask")
    for args, stdin in ((["db", "upgrade"], None), (["keys", "ensure"], None),
                        (["users", "create", "bench", "--password-stdin"], PASSWORD + "\n")):
        subprocess.run([flask, *args], cwd=ROOT, env=env, input=stdin, text=True, check=True,
                       capture_output=True, timeout=120)
    return url


def tessera_env(url: str, tmp: Path, redis_url: str | None,
                issuer: str = ISSUER) -> dict[str, str]:
    """A Tessera server's settings for the bench: limits out of the way, no access log."""
    env = {"TESSERA_DATABASE_URL": url, "TESSERA_KEY_ENCRYPTION_KEY": KEK,
           "TESSERA_ISSUER": issuer, "TESSERA_INSTANCE_PATH": str(tmp),
           "TESSERA_ACCESS_LOG": "", "TESSERA_RATELIMIT_REFRESH": "100000000/minute",
           "TESSERA_RATELIMIT_LOGIN_PER_IP": "100000000/minute",
           "TESSERA_RATELIMIT_LOGIN_PER_USERNAME": "100000000/minute"}
    if issuer == ISSUER:
        env["TESSERA_COOKIE_SECURE"] = "false"
    if redis_url:
        env["TESSERA_REDIS_URL"] = redis_url
    return env


def login(base_url: str) -> tuple[str, str, str]:
    """Log the bench user in: the access token, the refresh and the CSRF cookies."""
    reply = call("POST", base_url + "/auth/login",
                 json_body={"username": "bench", "password": PASSWORD})
    assert reply.status == 200, reply.body
    jar: SimpleCookie = SimpleCookie()
    for value in reply.set_cookies:
        jar.load(value)
    # Secure cookies (an https ISSUER) carry a __Host- or __Secure- prefix.
    cookies = {name.split("-", 1)[-1]: morsel.value for name, morsel in jar.items()}
    return reply.json()["access_token"], cookies["refresh_token"], cookies["csrf_token"]


def refresh_file(server: AppServer, tmp: Path, name: str) -> Path:
    """Two new sessions' refresh and CSRF cookies, one "refresh csrf" pair a line.

    New for each turn: a turn ends holding rotated tokens that only wrk saw,
    and presenting an old one again would be reuse (SPEC §5).
    """
    pairs = [login(server.url)[1:] for _ in range(2)]
    path = tmp / f"refresh-{name}.txt"
    path.write_text("\n".join(f"{refresh} {csrf}" for refresh, csrf in pairs) + "\n")
    return path


def sign_tokens(url: str, tmp: Path, sid_source: str, count: int, name: str) -> Path:
    """``count`` valid tokens of one real session, each its own jti (first-seen tokens)."""
    from app import create_app, state
    from app.core.tokens import access_claims, sign_token
    from app.security import snapshot

    claims = json.loads(base64.urlsafe_b64decode(sid_source.split(".")[1] + "=="))
    app = create_app({"DATABASE_URL": url, "KEY_ENCRYPTION_KEY": KEK, "ISSUER": claims["iss"]},
                     instance_path=str(tmp))
    path = tmp / f"tokens-{name}.txt"
    with app.app_context():
        signer = snapshot().current_signer()
        assert signer is not None, "no signing key: prepare_database makes them"
        s = state.settings()
        now = int(time.time())
        lines = [sign_token(signer, access_claims(
            issuer=s.issuer, audience=s.access_audience, user_id=int(claims["sub"]),
            session_id=claims["sid"], client_id="web", scope=claims["scope"], roles=[],
            auth_time=now, amr=["pwd"], acr="aal1", now=now, ttl=900))
            for _ in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path
