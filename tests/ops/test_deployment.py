"""Deploying: guard rails that stop a production start, and the JSON log lines.

Both run gunicorn as production does (gunicorn.conf.py, wsgi:app) and read what
the process prints.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_KEK
from tests.support.http import call
from tests.support.servers import ROOT, AppServer, free_port, wait_until
from tests.support.tokens import PASSWORD, make_user

_PRODUCTION_DB = "postgresql://tessera@127.0.0.1:1/tessera"  # never reached: refused first
_UNROUTABLE_BIND = "192.0.2.1:8000"  # TEST-NET-1: not an address of this host


def _gunicorn_exits(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Start gunicorn with ``env`` and wait for it to give up (bounded)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("TESSERA_") and k not in ("DATABASE_URL", "REDIS_URL")}
    full = {**base, "TESSERA_INSTANCE_PATH": str(tmp_path / "instance"),
            "TESSERA_BIND": f"127.0.0.1:{free_port()}", **env}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return subprocess.run([str(gunicorn), "-c", "gunicorn.conf.py", "--bind", full["TESSERA_BIND"],
                           "wsgi:app"], check=False, cwd=ROOT, env=full, capture_output=True,
                          text=True,
                          timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "env"), [
    ("ISSUER", {"TESSERA_DATABASE_URL": _PRODUCTION_DB, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK}),
    ("ISSUER", {"TESSERA_BIND": _UNROUTABLE_BIND, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK}),
    ("COOKIE_SECURE", {"TESSERA_DATABASE_URL": _PRODUCTION_DB,
                       "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
                       "TESSERA_ISSUER": "https://auth.example.com",
                       "TESSERA_COOKIE_SECURE": "false"}),
    ("KEY_ENCRYPTION_KEY", {"TESSERA_BIND": _UNROUTABLE_BIND,
                            "TESSERA_ISSUER": "https://auth.example.com"}),
    ("KEY_ENCRYPTION_KEY", {"TESSERA_DATABASE_URL": _PRODUCTION_DB,
                            "TESSERA_ISSUER": "https://auth.example.com"}),
])
def test_production_start_refused_with_one_line(name: str, env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = _gunicorn_exits(env, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    naming = [line for line in output.splitlines() if f"setting {name} " in line]
    assert len(naming) == 1, output
    assert naming[0].startswith(f"tessera: setting {name} (env TESSERA_{name}): ")
    assert "Traceback" not in output
    assert not (tmp_path / "instance" / "key-encryption-key").exists()  # nothing was made


@pytest.mark.slow
def test_development_on_loopback_starts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The guard rails leave the embedded default alone (SQLite, loopback, defaults)."""
    server = AppServer({"TESSERA_INSTANCE_PATH": str(tmp_path / "instance")}).start()
    try:
        assert call("GET", server.url + "/healthz").status == 200
    finally:
        server.stop()


def _json_lines(text: str) -> list[dict]:  # type: ignore[type-arg]
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.mark.slow
def test_login_and_failed_login_each_print_one_json_audit_line(app, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_user(app, "alice")
    server = AppServer({"TESSERA_DATABASE_URL": database_url,
                        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
                        "TESSERA_ISSUER": "http://localhost", "TESSERA_COOKIE_SECURE": "false",
                        "TESSERA_INSTANCE_PATH": str(tmp_path / "srv"),
                        "TESSERA_ACCESS_LOG": "-"}).start()
    try:
        ok = call("POST", server.url + "/auth/login", headers={"X-Request-ID": "req-ok-1"},
                  json_body={"username": "alice", "password": PASSWORD})
        bad = call("POST", server.url + "/auth/login", headers={"X-Request-ID": "req-bad-1"},
                   json_body={"username": "alice", "password": "wrong-" + PASSWORD})
        assert (ok.status, bad.status) == (200, 401)
    finally:
        server.stop()
    output = server.log()
    lines = _json_lines(output)
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    audit = [line for line in lines if line["logger"] == "tessera.audit"]
    success = [line for line in audit if line["message"] == "LOGIN_SUCCESS"]
    failure = [line for line in audit if line["message"] == "LOGIN_FAILURE"]
    assert len(success) == 1 and len(failure) == 1, audit
    assert success[0]["request_id"] == "req-ok-1" and success[0]["audit"]["user_id"]
    assert failure[0]["request_id"] == "req-bad-1" and failure[0]["audit"]["result"] == "failure"
    access_token = ok.json()["access_token"]
    for secret in (PASSWORD, access_token, *ok.set_cookies):
        value = secret.split(";")[0].split("=", 1)[-1]
        assert value not in output
    assert any(line["logger"] == "gunicorn.access" for line in lines)  # one format for all


@pytest.mark.slow
def test_an_empty_access_log_setting_prints_no_access_line(app, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = AppServer({"TESSERA_DATABASE_URL": database_url,
                        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
                        "TESSERA_ISSUER": "http://localhost",
                        "TESSERA_INSTANCE_PATH": str(tmp_path / "srv"),
                        "TESSERA_ACCESS_LOG": ""}).start()
    try:
        assert all(call("GET", server.url + path).status == 200
                   for path in ("/healthz", "/.well-known/jwks.json", "/healthz"))
    finally:
        server.stop()
    lines = _json_lines(server.log())
    assert lines  # gunicorn's own start lines: the log was written
    assert not [line for line in lines if line["logger"] == "gunicorn.access"]


def test_a_bad_freeze_schedule_setting_refuses_to_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = AppServer({"TESSERA_INSTANCE_PATH": str(tmp_path / "srv"),
                        "TESSERA_GC_FREEZE_EVERY": "often"})
    with pytest.raises(RuntimeError) as refused:
        server.start()
    said = str(refused.value)
    assert "TESSERA_GC_FREEZE_EVERY: expected a whole number >= 0, got 'often'" in said
    assert "Traceback" not in said


def test_a_worker_on_sqlite_checkpoints_the_log_off_the_request_path(  # type: ignore[no-untyped-def]
        app, database_url, tmp_path) -> None:
    """A login writes a few pages to the log, far below the threshold at which a commit
    would copy them into the database file; the worker's checkpoint thread does."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's write-ahead log")
    make_user(app, "alice")
    server = AppServer({"TESSERA_DATABASE_URL": database_url,
                        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
                        "TESSERA_ISSUER": "http://localhost", "TESSERA_COOKIE_SECURE": "false",
                        "TESSERA_INSTANCE_PATH": str(tmp_path / "srv")}, workers=1).start()
    database = Path(database_url.removeprefix("sqlite:///"))

    def sessions_in_the_file() -> int:
        copy = tmp_path / "copy.db"  # the database file alone: what checkpoints copied
        shutil.copyfile(database, copy)
        with sqlite3.connect(copy) as connection:
            return int(connection.execute("SELECT count(*) FROM auth_sessions").fetchone()[0])

    try:
        assert sessions_in_the_file() == 0
        assert call("POST", server.url + "/auth/login",
                    json_body={"username": "alice", "password": PASSWORD}).status == 200
        wait_until(lambda: sessions_in_the_file() == 1, timeout=10)
    finally:
        server.stop()
