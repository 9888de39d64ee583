"""nginx with TLS in front of upstream instances, for the bench's production topology.

The site is deploy/nginx/tessera.conf.template rendered as scripts/cluster.sh
renders it (loopback ports, Debian's nginx, one worker), with two changes for
a load from one address: the per-address request rate of its limiter goes
from 100/s to 100,000/s (the limiter still runs on every request) and the
access log is off (as cluster.sh's http block has it for other servers; the
bench never reads it). The certificate is self-signed, made at run time for
localhost and 127.0.0.1. The same rendering serves Tessera's instances and
the flask-jwt-extended reference's, so both pay the same proxy.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from string import Template

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.servers import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx" / "tessera.conf.template"
BENCH_RATE = "rate=100000r/s"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A P-256 key and a self-signed certificate for localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def render_site(upstreams: list[int], https_port: int, http_port: int, cert: Path, key: Path,
                logs: Path) -> str:
    """The deployable site, for these loopback upstreams, with the bench's request rate."""
    site = Template(TEMPLATE.read_text()).safe_substitute(
        SITE_NAME="localhost", SITE_ORIGIN=f"https://localhost:{https_port}",
        SITE_HTTP_LISTEN=f"127.0.0.1:{http_port}", SITE_HTTPS_LISTEN=f"127.0.0.1:{https_port}",
        SITE_CERT=str(cert), SITE_KEY=str(key), SITE_LOGS=str(logs),
        SITE_UPSTREAMS=" ".join(f"server 127.0.0.1:{port};" for port in upstreams))
    if "rate=100r/s" not in site:
        raise RuntimeError("the template's request rate changed: update bench/proxy.py")
    site = site.replace("rate=100r/s", BENCH_RATE)
    return site.replace(f"access_log {logs}/tessera-access.log tessera;", "access_log off;")


class Proxy:
    """One nginx (master and one worker) in the foreground of its own process group."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.https_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    def start(self, upstreams: list[int]) -> Proxy:
        """Render the site for ``upstreams`` (loopback ports) and start nginx."""
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        logs, tmp = self.dir / "logs", self.dir / "tmp"
        logs.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(exist_ok=True)
        self.dir.chmod(0o755)
        user = ""
        if os.getuid() == 0:  # the master reads the key as root; the worker drops to nobody
            user = "user nobody nogroup;"
            shutil.chown(tmp, "nobody")
        cert, key = self_signed(self.dir)
        (self.dir / "site.conf").write_text(render_site(
            upstreams, self.https_port, free_port(), cert, key, logs))
        (self.dir / "nginx.conf").write_text(f"""{user}
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {logs}/error.log;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {self.dir}/site.conf;
}}
""")
        args = [nginx, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                "-e", str(logs / "error.log")]
        subprocess.run([*args, "-q", "-t"], check=True, capture_output=True, timeout=30)
        self.process = subprocess.Popen(args, start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._listens, timeout=10)
        return self

    def _listens(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError("nginx exited:\n" + (self.dir / "logs" / "error.log").read_text())
        try:
            socket.create_connection(("127.0.0.1", self.https_port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
