"""The production topology (issue 18, acceptance 5), as ``scripts/cluster.sh up`` starts it.

nginx (deploy/nginx/tessera.conf.template, TLS from the script's own CA,
HTTP/2) in front of two Tessera hosts (separate gunicorn masters, two workers
each) that share one PostgreSQL and one Redis. Everything goes through nginx
over HTTPS, except the CLI runs that stand for the hosts' systemd timers.

nginx runs one worker, so its round robin alternates between the hosts; each
request's host is read back from nginx's access log (``upstream=``), found by
the request id that Tessera echoes (``X-Request-ID``, set by nginx).

The cluster starts its own PostgreSQL; the module runs in the PostgreSQL pass
of the test command, where PostgreSQL's binaries are known to be there.
"""

from __future__ import annotations

import base64
import hashlib
import http.cookiejar
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import create_engine, text

from tests.conftest import POSTGRES_URL
from tests.support.http import Reply
from tests.support.servers import ROOT, wait_until

pytestmark = [
    pytest.mark.slow,
    # A bound (a build, or a cluster to start, in the first test), not a speed check.
    pytest.mark.timeout(240),
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="runs in the PostgreSQL pass (the cluster "
                       "starts its own PostgreSQL from the binaries that pass provides)"),
]

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"


@dataclass
class Cluster:
    """What ``cluster.sh up`` wrote to DIR/cluster.env."""

    url: str
    ca: str
    cert: str
    access_log: Path
    hosts: dict[str, dict[str, str]]  # "a"/"b" -> the host's settings
    upstreams: dict[str, str]  # "127.0.0.1:port" -> "a"/"b"
    pg_url: str

    def tessera(self, host: str, *args: str) -> subprocess.Popen[str]:
        """The ``tessera`` command on ``host``: its settings only, as its systemd unit runs it."""
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
               "LANG": "C.UTF-8", **self.hosts[host]}
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "tessera"), *args], env=env, text=True,
            cwd=Path(self.hosts[host]["TESSERA_INSTANCE_PATH"]).parent,
            # Log lines go to stderr (JSON); a command's answer is its stdout.
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _finish(*processes: subprocess.Popen[str], stdin: str = "") -> list[str]:
    """Wait for every one (none left running if one failed), then check each succeeded."""
    results = [process.communicate(stdin, timeout=60) for process in processes]
    failed = [out + err for process, (out, err) in zip(processes, results, strict=True)
              if process.returncode]
    assert failed == [], failed
    return [out for out, _ in results]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Under /tmp and open to others: PostgreSQL and nginx's workers run unprivileged.
    directory = tempfile.mkdtemp(prefix="tessera-cluster-", dir="/tmp")
    os.chmod(directory, 0o755)
    env = {**os.environ, "VENV": str(Path(sys.executable).parent.parent)}
    command = ["bash", str(ROOT / "scripts" / "cluster.sh")]
    try:
        up = subprocess.run([*command, "up", directory], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=150, check=False)
        assert up.returncode == 0, f"cluster.sh up failed:\n{up.stdout}\n{up.stderr}"
        yield _cluster(Path(directory))
    finally:
        subprocess.run([*command, "down", directory], cwd=ROOT, env=env, capture_output=True,
                       timeout=120, check=False)


def _cluster(directory: Path) -> Cluster:
    found = _read_env(directory / "cluster.env")
    hosts = {host: _read_env(Path(found[f"HOST_{host.upper()}_ENV"])) for host in ("a", "b")}
    return Cluster(
        url=found["CLUSTER_URL"], ca=found["CLUSTER_CA"], cert=found["CLUSTER_CERT"],
        access_log=Path(found["CLUSTER_ACCESS_LOG"]), hosts=hosts,
        upstreams={settings["TESSERA_BIND"]: host for host, settings in hosts.items()},
        pg_url=found["PG_URL"].replace("postgresql://", "postgresql+psycopg://", 1),
    )


class Browser:
    """An HTTPS client with its own cookie jar that trusts the cluster's CA, and nothing else."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.jar = http.cookiejar.CookieJar()
        context = ssl.create_default_context(cafile=cluster.ca)
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context),
            urllib.request.HTTPCookieProcessor(self.jar))

    def call(self, method: str, path: str, json_body: Any = None,
             headers: dict[str, str] | None = None) -> Reply:
        data = None if json_body is None else json.dumps(json_body).encode()
        all_headers = {**({"Content-Type": "application/json"} if data else {}), **(headers or {})}
        request = urllib.request.Request(self.cluster.url + path, data=data, method=method,
                                         headers=all_headers)
        try:
            with self.opener.open(request, timeout=15) as response:
                return Reply(response.status, dict(response.headers), response.read(), [])
        except urllib.error.HTTPError as error:
            return Reply(error.code, dict(error.headers), error.read(), [])

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name and c.value is not None)

    def csrf(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.cookie("__Host-csrf_token")}

    def served_by(self, reply: Reply) -> str:
        """The host that answered, from nginx's log line with this request's id."""
        rid = reply.headers["X-Request-ID"]
        pattern = re.compile(rf"rid={rid} upstream=(\S+)")
        found: list[str] = []

        def logged() -> bool:
            found[:] = pattern.findall(self.cluster.access_log.read_text())
            return bool(found)

        wait_until(logged, timeout=5)  # nginx writes the line once the response is out
        return self.cluster.upstreams[found[0]]

    def to_host(self, host: str) -> None:
        """Make ``host`` answer the next request: round robin alternates, so probe once or twice."""
        for _ in range(2):
            if self.served_by(self.call("GET", "/healthz")) != host:
                return
        raise AssertionError("nginx's round robin does not alternate between the hosts")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _kid(token: str) -> str:
    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


@pytest.fixture(scope="module")
def users(cluster: Cluster) -> None:
    _finish(cluster.tessera("a", "users", "create", "alice", "--password-stdin"),
            cluster.tessera("b", "users", "create-admin", "--username", "root", "--password-stdin"),
            stdin=PASSWORD)


def _log_in(browser: Browser, username: str) -> tuple[str, str]:
    """Log in through nginx; the access token and the host that answered."""
    reply = browser.call("POST", "/auth/login", {"username": username, "password": PASSWORD})
    assert reply.status == 200, reply.body
    return reply.json()["access_token"], browser.served_by(reply)


def test_log_in_on_one_host_refresh_on_the_other_revoke_there_refused_here(
    cluster: Cluster, users: None
) -> None:
    alice = Browser(cluster)
    first_token, first = _log_in(alice, "alice")
    other = "b" if first == "a" else "a"

    alice.to_host(other)
    refreshed = alice.call("POST", "/auth/refresh", headers=alice.csrf())
    assert refreshed.status == 200, refreshed.body
    assert alice.served_by(refreshed) == other
    token = refreshed.json()["access_token"]
    for host in (first, other):  # both hosts know the token: their caches hold it
        alice.to_host(host)
        assert alice.call("GET", "/api/me", headers=_bearer(token)).status == 200

    # Logged out on one host: the very next request, on the other, is refused.
    alice.to_host(other)
    logged_out = alice.call("POST", "/auth/logout", headers=alice.csrf())
    assert logged_out.status == 200 and alice.served_by(logged_out) == other
    refused = alice.call("GET", "/api/me", headers=_bearer(token))
    assert alice.served_by(refused) == first
    assert refused.status == 401 and refused.json()["error"] == "invalid_token"
    assert alice.call("GET", "/api/me", headers=_bearer(first_token)).status == 401


def test_admin_revokes_a_user_on_one_host_and_the_other_refuses_at_once(
    cluster: Cluster, users: None
) -> None:
    alice, admin = Browser(cluster), Browser(cluster)
    token, _ = _log_in(alice, "alice")
    admin_token, _ = _log_in(admin, "root")
    for host in ("a", "b"):
        alice.to_host(host)
        assert alice.call("GET", "/api/me", headers=_bearer(token)).status == 200
    alice_id = alice.call("GET", "/api/me", headers=_bearer(token)).json()["sub"]

    admin.to_host("a")
    revoked = admin.call("POST", f"/admin/api/users/{alice_id}/revoke-tokens",
                         headers=_bearer(admin_token))
    assert revoked.status == 200, revoked.body
    refused = alice.call("GET", "/api/me", headers=_bearer(token))
    assert alice.served_by(refused) == "b" and refused.status == 401


def test_key_rotation_timers_on_both_hosts_at_once_rotate_exactly_once(
    cluster: Cluster, users: None
) -> None:
    engine = create_engine(cluster.pg_url)
    keys = "SELECT kid, state FROM signing_keys ORDER BY created_at, kid"
    with engine.begin() as db:  # the active key (and its standby) are now long due
        db.execute(text("UPDATE signing_keys SET created_at = created_at - interval '40 days', "
                        "activated_at = activated_at - interval '40 days' "
                        "WHERE state IN ('active', 'standby')"))
        before = {kid: state for kid, state in db.execute(text(keys))}
    old_active = next(kid for kid, state in before.items() if state == "active")
    standby = next(kid for kid, state in before.items() if state == "standby")

    try:
        outputs = sorted(_finish(*(cluster.tessera(host, "keys", "rotate", "--if-due")
                                   for host in ("a", "b"))))
        assert [line.split(":")[0] for line in outputs] == ["not due", "rotated"], outputs
        with engine.begin() as db:
            after = {kid: state for kid, state in db.execute(text(keys))}
    finally:
        engine.dispose()  # even when an assertion fails: no connection outlives the test
    assert sorted(after.values()) == ["active", "retired", "standby"]
    assert after[old_active] == "retired" and after[standby] == "active"

    # Both hosts sign with the new key once their keyring reloads (KEYRING_REFRESH, 5 s).
    browser = Browser(cluster)
    signing: dict[str, str] = {}

    def both_sign_with_the_new_key() -> bool:
        token, host = _log_in(browser, "alice")
        signing[host] = _kid(token)
        return signing == {"a": standby, "b": standby}

    wait_until(both_sign_with_the_new_key, timeout=20, interval=0.3)


def _spki_sha256(cert_path: str) -> str:
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def test_chromium_logs_in_over_http2_with_secure_host_cookies(cluster: Cluster,
                                                              users: None) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the test command installs Debian's chromium")
    with sync_playwright() as playwright:
        # Trust exactly the cluster's certificate (its key), as if its CA were installed.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  f"--ignore-certificate-errors-spki-list={_spki_sha256(cluster.cert)}"])
        try:
            page = browser.new_context().new_page()
            response = page.goto(f"{cluster.url}/login")
            assert response is not None and response.status == 200
            assert page.evaluate(
                "performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
            # (read after goto's load event: after a click, the next page may still be loading)
            assert page.evaluate("[...document.styleSheets].map(s => s.cssRules.length)")[0] > 0
            page.fill("#username", "alice")
            page.fill("#password", PASSWORD)
            page.click("button:has-text('Log in')")
            expect(page).to_have_url(f"{cluster.url}/account")
            expect(page.locator("#username")).to_have_text("alice")
            cookies = {c["name"]: c for c in page.context.cookies()}
            assert {"__Host-access_token", "__Host-csrf_token",
                    "__Secure-refresh_token"} <= set(cookies)
            assert all(c["secure"] for c in cookies.values())
            assert cookies["__Host-access_token"]["httpOnly"]
        finally:
            browser.close()
