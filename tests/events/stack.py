"""Tessera under gunicorn, a relay that records what the resource server sends it, and
the resource server (tests/events/resource_server.py) as a process of its own."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import TEST_KEK
from tests.support.http import Reply, call
from tests.support.relay import Relay
from tests.support.servers import ROOT, AppServer, free_port, wait_until
from tests.support.tokens import bearer

_REQUEST_LINE = re.compile(rb"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]\r\n")


def tessera_server(database_url: str, instance: Path, workers: int = 1,
                   **settings: str) -> AppServer:
    """Tessera on the test's database (started)."""
    env = {"TESSERA_DATABASE_URL": database_url, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
           "TESSERA_ISSUER": "http://localhost", "TESSERA_COOKIE_SECURE": "false",
           "TESSERA_INSTANCE_PATH": str(instance),
           **{k if k == "REDIS_URL" else f"TESSERA_{k}": v for k, v in settings.items()}}
    return AppServer(env, workers=workers, threads=8).start()


class ResourceServer:
    """The resource server process; ``kill`` and ``start`` again to restart it."""

    def __init__(self, tessera_url: str, creds: tuple[str, str], state_path: Path,
                 **extra: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, "RS_TESSERA_URL": tessera_url, "RS_CLIENT_ID": creds[0],
                    "RS_CLIENT_SECRET": creds[1], "RS_STATE_PATH": str(state_path),
                    "RS_PORT": str(self.port), **extra,
                    # the package from this checkout, installed or not
                    "PYTHONPATH": str(ROOT / "verifier" / "src")}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ResourceServer:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "events" / "resource_server.py")],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_until(self._answers, timeout=20)
        return self

    def _answers(self) -> bool:
        try:
            return call("GET", self.url + "/readyz", timeout=1).status in (200, 503)
        except OSError:
            return False

    def ready(self) -> bool:
        return call("GET", self.url + "/readyz").status == 200

    def get(self, path: str, token: str) -> Reply:
        return call("GET", self.url + path, headers=bearer(token))

    def kill(self) -> None:
        """SIGKILL: no goodbye, as a crashed or redeployed server."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


def refused_within(rs: ResourceServer, token: str, started: float, path: str = "/notes",
                   limit: float = 5.0) -> tuple[float, str]:
    """Seconds from ``started`` until the resource server refuses ``token``, and why."""
    while time.monotonic() - started < limit:
        reply = rs.get(path, token)
        if reply.status == 401:
            return time.monotonic() - started, reason(reply)
        time.sleep(0.02)
    raise AssertionError(f"{path} still accepts the token after {limit}s")


def reason(reply: Reply) -> str:
    """The refusal's reason code (the test resource server's header)."""
    return next((v for k, v in reply.headers.items() if k.lower() == "x-test-reason"), "")


def requested_paths(relay: Relay) -> list[str]:
    """Every request path the resource server sent Tessera through the relay."""
    return [path.decode() for _, path in _REQUEST_LINE.findall(bytes(relay.sent))]
