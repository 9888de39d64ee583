"""Redis as production runs it, for the tests: TLS, a unix socket, Sentinel.

Every process listens on 127.0.0.1 (or a socket in a temporary directory), on
free ports, is waited for with a bound, and is killed by ``stop()``. The TLS
server uses a CA and certificates made by ``tests/support/certificates.py``;
``tests/support/relay.py`` forwards TCP bytes and keeps what clients sent.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import redis

from tests.support.certificates import make_tls_files
from tests.support.relay import Relay
from tests.support.servers import free_port, wait_until

__all__ = ["PASSWORD", "SERVICE", "PlainRedis", "Relay", "SentinelGroup", "TlsRedis",
           "UnixRedis"]

PASSWORD = "s3cret-redis-password"  # the test servers' requirepass


# --- redis-server processes


class RedisProcess:
    """One redis-server (or redis-sentinel) with a config file, so CONFIG REWRITE works."""

    def __init__(self, args: list[str], client: Callable[[], redis.Redis],
                 directory: Path, *, sentinel: bool = False, config: str = "") -> None:
        self.args = args
        self.make_client = client
        self.dir = directory
        self.sentinel = sentinel
        self.config = directory / ("sentinel.conf" if sentinel else "redis.conf")
        self.config.write_text(config)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        binary = shutil.which("redis-sentinel" if self.sentinel else "redis-server")
        if binary is None:
            raise RuntimeError("redis-server/redis-sentinel not installed (scripts/test.sh)")
        self.process = subprocess.Popen(
            [binary, str(self.config), "--dir", str(self.dir), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, timeout=15)
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.args[:2]} exited with {self.process.returncode}")
        try:
            with self.make_client() as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    def client(self) -> redis.Redis:
        return self.make_client()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def _base_args(port: int) -> list[str]:
    return ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--protected-mode", "yes"]


class PlainRedis:
    """A plain-TCP redis-server with no password (a second, unrelated server)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tessera-redis-"))
        self.port = free_port()
        self.server = RedisProcess(_base_args(self.port), self.client, self.dir)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def start(self) -> PlainRedis:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class TlsRedis:
    """A redis-server that speaks only TLS (``--port 0``), requires a client
    certificate and a password."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tessera-redis-tls-"))
        self.tls = make_tls_files(self.dir)
        self.port = free_port()
        args = [*_base_args(0), "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.server_cert),
                "--tls-key-file", str(self.tls.server_key),
                "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "yes",
                "--requirepass", PASSWORD]
        self.server = RedisProcess(args, self.client, self.dir)

    def url(self, port: int | None = None) -> str:
        """A ``rediss://`` URL (to ``port`` if given: a relay in front) with the TLS files."""
        query = urlencode({"ssl_ca_certs": self.tls.ca, "ssl_certfile": self.tls.client_cert,
                           "ssl_keyfile": self.tls.client_key, "ssl_cert_reqs": "required"})
        return f"rediss://:{PASSWORD}@127.0.0.1:{port or self.port}/0?{query}"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url(), socket_timeout=2)

    def start(self) -> TlsRedis:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class UnixRedis:
    """A redis-server on a unix socket only (``--port 0``), with a password."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tessera-redis-unix-"))
        self.path = self.dir / "redis.sock"
        args = [*_base_args(0), "--unixsocket", str(self.path), "--unixsocketperm", "700",
                "--requirepass", PASSWORD]
        self.server = RedisProcess(args, self.client, self.dir)

    @property
    def url(self) -> str:
        return f"unix://:{PASSWORD}@{self.path}?db=0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def start(self) -> UnixRedis:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- Sentinel


SERVICE = "tessera"


class SentinelGroup:
    """A primary, one replica and three Sentinels watching them (quorum 2).

    Automatic failover is slow on purpose (``down-after`` 60 s): the tests fail
    over when they choose, with ``SENTINEL FAILOVER``.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tessera-sentinel-"))
        self.ports = [free_port(), free_port()]
        self.servers: list[RedisProcess] = []
        for index, port in enumerate(self.ports):
            directory = self.dir / f"redis-{index}"
            directory.mkdir()
            replica = ["--replicaof", "127.0.0.1", str(self.ports[0])] if index else []
            self.servers.append(RedisProcess(
                [*_base_args(port), "--requirepass", PASSWORD, "--masterauth", PASSWORD,
                 "--repl-diskless-sync-delay", "0",  # no 5 s wait per sync
                 # The Sentinels' own user, so that a test can take rights from them.
                 "--user", "sentinel", "on", f">{PASSWORD}", "~*", "&*", "+@all", *replica],
                self._client_for(port), directory))
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[RedisProcess] = []
        for index, port in enumerate(self.sentinel_ports):
            directory = self.dir / f"sentinel-{index}"
            directory.mkdir()
            config = "\n".join([
                f"port {port}", "bind 127.0.0.1",
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.ports[0]} 2",
                f"sentinel auth-user {SERVICE} sentinel",
                f"sentinel auth-pass {SERVICE} {PASSWORD}",
                f"sentinel down-after-milliseconds {SERVICE} 60000",
                f"sentinel failover-timeout {SERVICE} 10000", ""])
            self.sentinels.append(RedisProcess(
                [], self._client_for(port, password=None), directory, sentinel=True,
                config=config))

    @staticmethod
    def _client_for(port: int, password: str | None = PASSWORD) -> Callable[[], redis.Redis]:
        return lambda: redis.Redis(port=port, password=password, socket_timeout=2)

    @property
    def url(self) -> str:
        """REDIS_URL under Sentinel: the credentials and db (the address comes from Sentinel)."""
        return f"redis://:{PASSWORD}@/0"

    @property
    def sentinel_addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    def settings(self) -> dict[str, Any]:
        """The Tessera settings that use this group."""
        return {"REDIS_URL": self.url, "REDIS_SENTINELS": self.sentinel_addresses,
                "REDIS_SENTINEL_SERVICE": SERVICE}

    def start(self) -> SentinelGroup:
        for server in self.servers:
            server.start()
        wait_until(lambda: self._info(1).get("master_link_status") == "up", timeout=15)
        for sentinel in self.sentinels:
            sentinel.start()
        wait_until(self._sentinels_ready, timeout=20)
        return self

    def _info(self, index: int) -> dict[str, Any]:
        info: dict[str, Any] = self.servers[index].client().info("replication")
        return info

    def _sentinels_ready(self) -> bool:
        """Every Sentinel knows the replica: the one asked can promote it, and the
        others hear the new configuration on its hello channel."""
        return all(any(r["port"] == self.ports[1] and r.get("is_slave") and
                       r.get("master-link-status") == "ok"
                       for r in sentinel.client().sentinel_slaves(SERVICE))
                   for sentinel in self.sentinels)

    def primary_port(self, sentinel: int = 0) -> int:
        """The primary's port according to one Sentinel."""
        _, port = self.sentinels[sentinel].client().sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def cut_replication(self) -> None:
        """Make the replica miss every write from now on: it cannot log back in."""
        replica = self.servers[1].client()
        replica.config_set("masterauth", "wrong-password")
        replica.execute_command("CLIENT", "KILL", "TYPE", "master")
        wait_until(lambda: self._info(0).get("connected_slaves") == 0, timeout=10)

    def keep_old_primary(self) -> None:
        """The Sentinels can no longer demote the primary (REPLICAOF refused, and with
        it their CLIENT KILLs): after a failover it stays a primary, clients and all,
        as one cut off from the Sentinels would."""
        self.servers[0].client().execute_command(
            "ACL", "SETUSER", "sentinel", "-replicaof", "-slaveof")

    def fail_over(self, old_primary_follows: bool = True) -> None:
        """SENTINEL FAILOVER to the replica; wait until every Sentinel names it and the
        old primary (if alive, and asked) follows it."""
        target = self.ports[1]

        def started() -> bool:
            try:
                return bool(self.sentinels[0].client().execute_command(
                    "SENTINEL", "FAILOVER", SERVICE))
            except redis.ResponseError:  # NOGOODSLAVE until its link is judged again
                return False

        wait_until(started, timeout=20, interval=0.5)
        wait_until(lambda: all(self.primary_port(i) == target for i in range(3)), timeout=30,
                   interval=0.2)
        wait_until(lambda: self._info(1).get("role") == "master", timeout=10)
        if self.servers[0].process is None or not old_primary_follows:
            return
        # The old primary, alive, is turned into the new one's replica (its clients killed).
        wait_until(lambda: self._info(0).get("role") == "slave", timeout=20, interval=0.2)

    def stop(self) -> None:
        for process in (*self.sentinels, *self.servers):
            process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
