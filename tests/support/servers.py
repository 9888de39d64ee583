"""Real servers for the tests: redis-server and gunicorn, on loopback, bounded in time."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


class RedisServer:
    """A throw-away redis-server that tests may kill, restart and flush.

    Persistence is off unless asked for: ``save`` takes RDB save points as
    ``--save`` does (``""``: none, though ``SAVE`` still writes a snapshot), and
    ``appendonly`` turns the AOF on, fsynced on every write so that a copy of
    its directory is exactly what Redis had acknowledged. Both may be changed
    between restarts, which keep the port and the directory.
    """

    def __init__(self, *, save: str = "", appendonly: bool = False,
                 replica_of: int | None = None) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tessera-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self.save = save
        self.appendonly = appendonly
        self.replica_of = replica_of  # the port of a primary on 127.0.0.1

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (run the README's test command)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", self.save,
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
             "--dir", self.dir, "--protected-mode", "yes",
             *(["--replicaof", "127.0.0.1", str(self.replica_of)] if self.replica_of else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers)

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.2).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), losing everything in memory."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def shutdown_nosave(self) -> None:
        """``SHUTDOWN NOSAVE``: stop without writing anything more to disk."""
        if self.process is None:
            return
        try:
            self.client().shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it goes
        self.process.wait(timeout=10)
        self.process = None

    @property
    def aof_dir(self) -> Path:
        return Path(self.dir) / "appendonlydir"

    def copy_aof(self, destination: Path) -> None:
        """Copy the AOF as it is now (every acknowledged write is already on disk)."""
        shutil.copytree(self.aof_dir, destination)

    def restore_aof(self, source: Path) -> None:
        """Put back an AOF copied earlier; the server must be stopped."""
        assert self.process is None
        shutil.rmtree(self.aof_dir, ignore_errors=True)
        shutil.copytree(source, self.aof_dir)

    def set_maxmemory(self, limit: int) -> None:
        """``CONFIG SET maxmemory``: 1 makes every write fail (noeviction), 0 lifts it."""
        self.client().config_set("maxmemory", limit)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class AppServer:
    """Tessera under gunicorn in its own process(es), configured through the environment."""

    def __init__(self, env: Mapping[str, str], workers: int = 1, threads: int = 4,
                 wsgi: str = "wsgi:app") -> None:
        self.port = free_port()
        self.wsgi = wsgi
        self.env = {**os.environ, "TESSERA_ACCESS_LOG": "", **env,
                    "TESSERA_BIND": f"127.0.0.1:{self.port}",
                    "TESSERA_WORKERS": str(workers), "TESSERA_THREADS": str(threads)}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="tessera-gunicorn-", suffix=".log")[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AppServer:
        gunicorn = Path(sys.executable).parent / "gunicorn"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(gunicorn), "-c", "gunicorn.conf.py", self.wsgi],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._answers, timeout=30)
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError("gunicorn exited:\n" + self.log_path.read_text()[-3000:])
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text()

    def reload(self, workers: int) -> None:
        """SIGHUP: gunicorn starts ``workers`` new workers and stops the old ones;
        return once the old ones have exited."""
        assert self.process is not None
        exited = self.log().count("Worker exiting")
        booted = self.log().count("Booting worker")
        os.kill(self.process.pid, signal.SIGHUP)
        wait_until(lambda: self.log().count("Booting worker") >= booted + workers
                   and self.log().count("Worker exiting") >= exited + workers, timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process = None
