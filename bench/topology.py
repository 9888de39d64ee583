"""The servers the HTTP bench measures, started once and stopped together.

- direct, on loopback, each under the same gunicorn settings (BENCH_WORKERS
  workers of BENCH_THREADS threads): Tessera on SQLite with and without Redis,
  the same on PostgreSQL (when BENCH_DATABASE_URL names a server), and the
  flask-jwt-extended reference (bench/reference_app.py, Redis blocklist);
- the production topology (PostgreSQL and Redis, when BENCH_DATABASE_URL is
  set and BENCH_PROXY is not 0): nginx with TLS (bench/proxy.py, the deployable
  site) in front of two Tessera instances, and another nginx with the same site
  in front of two reference instances. Each instance runs BENCH_PROXY_WORKERS
  workers (1: the two instances together have the direct servers' two).

Each Tessera deployment has its own Redis server: one revocation mirror must
not see another deployment's keys. Servers go on the servers' CPU, the load
generator, Redis and nginx on the other (bench/wrk_run.py).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench import fixtures
from bench.proxy import Proxy
from bench.wrk_run import LOAD_CPUS, SERVER_CPUS, pin
from tests.support.servers import AppServer, RedisServer

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
PROXY_WORKERS = int(os.environ.get("BENCH_PROXY_WORKERS", "1"))


@dataclass
class Servers:
    """Everything started, by role; ``stop`` stops it all."""

    tmp: Path
    tessera: dict[str, AppServer] = field(default_factory=dict)  # "redis", "db", "redis_pg"...
    databases: dict[str, str] = field(default_factory=dict)  # "sqlite", "pg", "proxy" -> URL
    reference: AppServer | None = None
    proxies: dict[str, Proxy] = field(default_factory=dict)  # "tessera", "reference"
    instances: list[AppServer] = field(default_factory=list)  # behind the proxies
    redis: list[RedisServer] = field(default_factory=list)

    def stop(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
        for server in [*self.tessera.values(), *self.instances,
                       *([self.reference] if self.reference else [])]:
            server.stop()
        for redis_server in self.redis:
            redis_server.stop()


def _redis(servers: Servers) -> str:
    redis_server = RedisServer()
    redis_server.start()
    servers.redis.append(redis_server)
    pin(redis_server.process.pid, LOAD_CPUS)  # type: ignore[union-attr]
    return redis_server.url


def _tessera(env: dict[str, str], workers: int = WORKERS) -> AppServer:
    server = AppServer(env, workers=workers, threads=THREADS).start()
    pin(server.process.pid, SERVER_CPUS)  # type: ignore[union-attr]
    return server


def _reference(tmp: Path, redis_url: str, workers: int = WORKERS) -> AppServer:
    key_path = tmp / "ref.pem"
    if not key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (tmp / "ref.pub").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    env = {"BENCH_PRIVATE_KEY": str(key_path), "BENCH_PUBLIC_KEY": str(tmp / "ref.pub"),
           "BENCH_REDIS_URL": redis_url, "TESSERA_ACCESS_LOG": ""}
    server = AppServer(env, workers=workers, threads=THREADS,
                       wsgi="bench.reference_app:app").start()
    pin(server.process.pid, SERVER_CPUS)  # type: ignore[union-attr]
    return server


def start(tmp: Path, pg_server: str | None) -> Servers:
    """Start every server of the run; stops what started if one fails."""
    servers = Servers(tmp)
    try:
        sqlite = fixtures.prepare_database(f"sqlite:///{tmp}/bench.db", tmp)
        servers.databases["sqlite"] = sqlite
        redis_url = _redis(servers)
        servers.tessera["redis"] = _tessera(fixtures.tessera_env(sqlite, tmp, redis_url))
        servers.tessera["db"] = _tessera(fixtures.tessera_env(sqlite, tmp, None))
        servers.reference = _reference(tmp, redis_url)
        if pg_server:
            pg = fixtures.prepare_database(
                fixtures.postgres_database(pg_server, "tessera_bench_http"), tmp)
            servers.databases["pg"] = pg
            servers.tessera["redis_pg"] = _tessera(fixtures.tessera_env(pg, tmp, _redis(servers)))
            servers.tessera["db_pg"] = _tessera(fixtures.tessera_env(pg, tmp, None))
        if pg_server and os.environ.get("BENCH_PROXY", "1") != "0" and shutil.which("nginx"):
            _start_proxied(servers, pg_server)
    except BaseException:
        servers.stop()
        raise
    return servers


def _start_proxied(servers: Servers, pg_server: str) -> None:
    """nginx + TLS in front of two Tessera instances, and the same in front of the reference."""
    tmp = servers.tmp
    proxy = Proxy(Path(_open_dir(tmp / "proxy-tessera")))
    issuer = proxy.url  # the public origin: the tokens' iss, as in production
    url = fixtures.prepare_database(
        fixtures.postgres_database(pg_server, "tessera_bench_proxy"), tmp, issuer)
    servers.databases["proxy"] = url
    env = {**fixtures.tessera_env(url, tmp, _redis(servers), issuer),
           "TESSERA_TRUSTED_PROXIES": "1"}
    hosts = [_tessera(env, PROXY_WORKERS) for _ in range(2)]
    servers.instances += hosts
    servers.proxies["tessera"] = proxy.start([host.port for host in hosts])
    pin(proxy.process.pid, LOAD_CPUS)  # type: ignore[union-attr]
    reference_proxy = Proxy(Path(_open_dir(tmp / "proxy-reference")))
    redis_url = servers.reference.env["BENCH_REDIS_URL"]  # type: ignore[union-attr]
    references = [_reference(tmp, redis_url, PROXY_WORKERS) for _ in range(2)]
    servers.instances += references
    servers.proxies["reference"] = reference_proxy.start([ref.port for ref in references])
    pin(reference_proxy.process.pid, LOAD_CPUS)  # type: ignore[union-attr]


def _open_dir(path: Path) -> str:
    """A directory nginx's unprivileged worker may enter (its parents too: /tmp's are)."""
    path.mkdir(parents=True, exist_ok=True)
    for part in (path, *path.parents):
        if str(part).startswith("/tmp/"):
            part.chmod(0o755)
    return str(path)
