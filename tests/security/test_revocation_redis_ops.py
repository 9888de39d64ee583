"""Revocation that survives real Redis operations (issue 15, acceptance 1, 3, 5, 6).

One stack for the module: a database (SQLite, or PostgreSQL when the test
command provides one), one redis-server whose persistence each test sets,
two Tessera instances of two gunicorn workers each, and a third instance in
this process (for reading the trust row and racing a rebuild). Every test
makes its own users, so the tests do not depend on each other's leftovers.
Each scenario revokes tokens by jti, by session, by user and by key, and
exchanges a legacy token.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask

from app import create_app
from app.core.revocation import EPOCH_KEY, redis_key
from app.core.revocation_trust import TrustRow, TrustStore
from app.extensions import db
from app.models import AuthSession, Revocation
from app.security.keyops import ensure_signing_keys
from app.security.revocation import revocations
from tests.conftest import POSTGRES_URL, TEST_KEK, _empty_postgres
from tests.support.http import Reply, call
from tests.support.servers import AppServer, RedisServer, wait_until
from tests.support.tokens import PASSWORD, bearer, make_user

pytestmark = pytest.mark.slow

LEGACY_SECRET = "legacy-hs256-secret-of-the-old-system-for-tests"
WORKERS = 2
TRIES = 6  # requests per token per instance: new connections, so both workers answer


@dataclass
class Stack:
    redis: RedisServer
    servers: list[AppServer]
    app: Flask  # a third instance, in this process
    tmp: Path
    users: list[str] = field(default_factory=list)

    def trust(self) -> TrustRow:
        with self.app.app_context():
            return TrustStore(lambda: db.engine).read()


def _database(template: str, tmp: Path) -> str:
    if POSTGRES_URL:
        _empty_postgres()
        return POSTGRES_URL
    path = tmp / "tessera.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def _settings(database_url: str, redis_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "KEY_ENCRYPTION_KEY": TEST_KEK, "ISSUER": "http://localhost",
            "COOKIE_SECURE": "false", "LEGACY_HS256_SECRETS": f'["{LEGACY_SECRET}"]',
            "MIGRATION_PHASE": "dual",
            # Many logins and exchanges from one address: the limits are not under test.
            "RATELIMIT_LOGIN_PER_IP": "10000/minute",
            "RATELIMIT_LOGIN_PER_USERNAME": "10000/minute",
            "RATELIMIT_EXCHANGE": "10000/minute", "RATELIMIT_REFRESH": "10000/minute"}


@pytest.fixture(scope="module")
def stack(database_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("redis-ops")
    url = _database(database_template, tmp)
    redis_server = RedisServer()
    redis_server.start()
    settings = _settings(url, redis_server.url)
    app = create_app({**settings, "COOKIE_SECURE": False,
                      "LEGACY_HS256_SECRETS": [LEGACY_SECRET]},
                     instance_path=str(tmp / "local"))
    with app.app_context():
        ensure_signing_keys()
    make_user(app, "root", roles=("admin",))
    servers: list[AppServer] = []
    try:
        for name in ("one", "two"):
            env = {f"TESSERA_{k}": v for k, v in settings.items()}
            env["TESSERA_INSTANCE_PATH"] = str(tmp / name)
            servers.append(AppServer(env, workers=WORKERS, threads=2).start())
        yield Stack(redis_server, servers, app, tmp)
    finally:
        for server in servers:
            server.stop()
        with app.app_context():
            db.engine.dispose()
        redis_server.stop()


# --- talking to the instances


@dataclass(frozen=True)
class Login:
    token: str
    refresh: str
    csrf: str

    @property
    def claims(self) -> dict[str, Any]:
        return jwt.decode(self.token, options={"verify_signature": False})  # type: ignore[no-any-return]


def _cookie(reply: Reply, name: str) -> str:
    for header in reply.set_cookies:
        if header.startswith(name + "="):
            return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie")


def _session_of(reply: Reply) -> Login:
    return Login(reply.json()["access_token"], _cookie(reply, "refresh_token"),
                 _cookie(reply, "csrf_token"))


def _login(server: AppServer, username: str) -> Login:
    reply = call("POST", server.url + "/auth/login",
                 json_body={"username": username, "password": PASSWORD})
    assert reply.status == 200, reply.body
    return _session_of(reply)


def _admin(stack: Stack, method: str, path: str, body: Any = None) -> Reply:
    """One admin call, with a fresh admin token (a key revocation ends older ones)."""
    admin = _login(stack.servers[0], "root")
    reply = call(method, stack.servers[0].url + "/admin/api" + path,
                 headers=bearer(admin.token), json_body=body)
    assert reply.status == 200, reply.body
    return reply


def _me(server: AppServer, token: str) -> int:
    return call("GET", server.url + "/api/me", headers=bearer(token)).status


def _accepted(stack: Stack, tokens: dict[str, str]) -> list[str]:
    """Which of ``tokens`` any worker of any instance accepts (TRIES each)."""
    return sorted({name for name, token in tokens.items() for server in stack.servers
                   for _ in range(TRIES) if _me(server, token) != 401})


def _always_accepted(stack: Stack, token: str) -> bool:
    return all(_me(server, token) == 200 for server in stack.servers for _ in range(TRIES))


def _user(stack: Stack, prefix: str) -> tuple[str, int]:
    name = f"{prefix}{len(stack.users)}"
    stack.users.append(name)
    return name, make_user(stack.app, name)


# --- one set of revocations: by key, jti, session, user, and an exchanged legacy token


@dataclass
class Revoked:
    tokens: dict[str, str]  # what must stay refused
    legacy: str  # the legacy token already exchanged
    valid: str  # a token nobody revoked
    keys: list[str]  # Redis keys the revocations wrote


def _revoke_everything(stack: Stack, prefix: str) -> Revoked:
    one, two = stack.servers
    by_key_user, _ = _user(stack, prefix)
    by_key = _login(one, by_key_user).token
    old_kid = jwt.get_unverified_header(by_key)["kid"]
    _admin(stack, "POST", "/keys/rotate", {"force": True})
    _admin(stack, "POST", f"/keys/{old_kid}/revoke")
    # From here every instance signs with the new key (a revoked key is never used).
    names = [_user(stack, prefix) for _ in range(4)]
    by_jti = _login(two, names[0][0])
    by_sid = _login(one, names[1][0])
    by_user = [_login(one, names[2][0]), _login(two, names[2][0])]
    valid = _login(two, names[3][0])
    _admin(stack, "POST", "/tokens/revoke", {"jti": by_jti.claims["jti"]})
    _admin(stack, "DELETE", f"/sessions/{by_sid.claims['sid']}")
    _admin(stack, "POST", f"/users/{names[2][1]}/revoke-tokens")
    legacy = jwt.encode({"sub": str(names[3][1]), "exp": 4_102_444_800}, LEGACY_SECRET,
                        algorithm="HS256")
    exchanged = call("POST", two.url + "/auth/token/exchange", headers=bearer(legacy))
    assert exchanged.status == 200, exchanged.body
    tokens = {"key": by_key, "jti": by_jti.token, "sid": by_sid.token,
              "user-1": by_user[0].token, "user-2": by_user[1].token, "legacy": legacy}
    keys = [redis_key("jti", by_jti.claims["jti"]), redis_key("sid", by_sid.claims["sid"]),
            redis_key("user", str(names[2][1])), redis_key("kid", old_kid)]
    return Revoked(tokens, legacy, valid.token, keys)


def _assert_refused_everywhere(stack: Stack, revoked: Revoked) -> None:
    assert _accepted(stack, revoked.tokens) == []
    for server in stack.servers:
        again = call("POST", server.url + "/auth/token/exchange", headers=bearer(revoked.legacy))
        assert again.status == 401, again.body
    assert _always_accepted(stack, revoked.valid)


def _warm(stack: Stack) -> None:
    """Every worker has checked a token, and Redis is trusted (rebuilt if it was not)."""
    name, _ = _user(stack, "warm")
    token = _login(stack.servers[0], name).token
    wait_until(lambda: _always_accepted(stack, token) and stack.trust().trusted, timeout=20)


# --- acceptance 1: restart from a snapshot taken before the revocations


def _restart_from_rdb(stack: Stack, revoke: Any) -> Revoked:
    stack.redis.shutdown_nosave()
    stack.redis.appendonly = False
    stack.redis.start()
    _warm(stack)
    stack.redis.client().save()  # dump.rdb: the epoch and nothing revoked below
    revoked = revoke()
    stack.redis.shutdown_nosave()
    stack.redis.start()  # loads dump.rdb
    return revoked


def _restart_from_aof(stack: Stack, revoke: Any) -> Revoked:
    stack.redis.shutdown_nosave()
    stack.redis.appendonly = True
    stack.redis.start()
    _warm(stack)
    copy = stack.tmp / f"aof-{len(stack.users)}"
    stack.redis.copy_aof(copy)
    revoked = revoke()
    stack.redis.shutdown_nosave()
    stack.redis.restore_aof(copy)
    stack.redis.start()  # replays the AOF as it was before the revocations
    return revoked


@pytest.mark.parametrize("restart", [_restart_from_rdb, _restart_from_aof],
                         ids=["rdb", "aof"])
def test_restart_from_a_snapshot_taken_before_the_revocations(stack: Stack, restart: Any) -> None:
    revoked = restart(stack, lambda: _revoke_everything(stack, "snap"))
    client = stack.redis.client()
    restored_epoch = client.get(EPOCH_KEY)
    assert restored_epoch is not None  # the old marker came back with the snapshot
    assert not any(client.exists(key) for key in revoked.keys)  # and the revocations did not
    # The very first requests after Redis answers again, on every worker of both instances.
    _assert_refused_everywhere(stack, revoked)
    # Repaired: a new epoch, on the restarted server, holding the revocations again.
    wait_until(lambda: _always_accepted(stack, revoked.valid) and stack.trust().trusted,
               timeout=20)
    assert stack.trust().epoch != restored_epoch
    assert all(client.exists(key) for key in revoked.keys)
    _assert_refused_everywhere(stack, revoked)


# --- acceptance 3: writes refused (maxmemory), then the workers restart


def _restart_workers(stack: Stack) -> None:
    one, two = stack.servers
    one.reload(WORKERS)  # SIGHUP: new workers, with nothing in memory
    two.stop()
    two.start()


def test_failed_writes_then_worker_restarts(stack: Stack) -> None:
    _warm(stack)
    one, two = stack.servers
    name, _ = _user(stack, "full")
    first = _login(one, name).token
    stack.redis.set_maxmemory(1)  # every write refused (noeviction); reads still work
    try:
        # The first failed write, and at once the other instance, whose workers share
        # nothing with the one that failed, then new workers everywhere.
        assert call("POST", one.url + "/auth/logout-all", headers=bearer(first)).status == 200
        assert [s for _ in range(TRIES) if (s := _me(two, first)) != 401] == []
        _restart_workers(stack)
        assert _accepted(stack, {"first": first}) == []
        assert not stack.trust().trusted  # the database says so, for every host
        # Every other kind of revocation, failing the same way.
        revoked = _revoke_everything(stack, "full")
        client = stack.redis.client()
        assert not any(client.exists(key) for key in revoked.keys)  # Redis has none of them
        _assert_refused_everywhere(stack, revoked)
        _restart_workers(stack)
        _assert_refused_everywhere(stack, revoked)
    finally:
        stack.redis.set_maxmemory(0)
    # Redis takes writes again: the next checks rebuild it from the database.
    wait_until(lambda: _always_accepted(stack, revoked.valid) and stack.trust().trusted,
               timeout=20)
    assert all(client.exists(key) for key in revoked.keys)
    _assert_refused_everywhere(stack, revoked)
    assert _accepted(stack, {"first": first}) == []


# --- acceptance 5: a shorter second revocation, and a rebuild racing a revoke-all


def test_a_shorter_second_revocation_keeps_the_longer_lifetime(stack: Stack) -> None:
    _warm(stack)
    name, _ = _user(stack, "twice")
    login = _login(stack.servers[0], name)
    jti = login.claims["jti"]
    _admin(stack, "POST", "/tokens/revoke", {"jti": jti})  # ACCESS_TOKEN_TTL + leeway: 930 s
    client = stack.redis.client()
    first = client.pttl(redis_key("jti", jti))
    assert first > 900_000
    now = datetime.now(UTC)
    with stack.app.test_request_context():  # the third instance revokes it again, for 5 s
        revocations().revoke_jti(jti, now + timedelta(seconds=5), now, "test")
    assert client.pttl(redis_key("jti", jti)) > 900_000  # not 5 s
    assert stack.trust().trusted  # a kept key is not a failed write
    assert _accepted(stack, {"jti": login.token}) == []


def test_a_rebuild_racing_a_revoke_all_keeps_the_newer_cutoff(stack: Stack) -> None:
    _warm(stack)
    name, uid = _user(stack, "race")
    key = redis_key("user", str(uid))
    _admin(stack, "POST", f"/users/{uid}/revoke-tokens")
    with stack.app.test_request_context():  # a rebuild reads the rows: the first cutoff
        stale = revocations().live_rows(datetime.now(UTC))
    between = _login(stack.servers[1], name)  # a session between the two revoke-alls
    _admin(stack, "POST", f"/users/{uid}/revoke-tokens")
    client = stack.redis.client()
    newer, expiry = client.get(key), client.pexpiretime(key)
    with stack.app.test_request_context():  # ...and writes them after the second revoke-all
        revocations().copy_rows(stale, datetime.now(UTC))
        row = db.session.scalars(db.select(Revocation).where(
            Revocation.kind == "user", Revocation.value == str(uid))).one()
    assert newer == str(int(row.not_before.timestamp() * 1_000_000)).encode()
    assert client.get(key) == newer  # the newer cutoff won
    assert client.pexpiretime(key) == expiry  # and so did its longer life (PTTL's absolute twin)
    assert client.pttl(key) > 0
    assert _accepted(stack, {"between": between.token}) == []


# --- acceptance 6: logins in flight while the user is disabled (or all their tokens revoked)


def _logins_in_flight(stack: Stack, name: str, revoke: Any) -> list[Login]:
    """20 logins with the right password, over both instances; ``revoke`` runs once
    three of them are through, so that the others are in flight. The logins that
    succeeded, whenever they did."""
    replies: list[Reply] = []
    some_done = threading.Event()
    lock = threading.Lock()

    def log_in(i: int) -> None:
        reply = call("POST", stack.servers[i % 2].url + "/auth/login",
                     json_body={"username": name, "password": PASSWORD}, timeout=30)
        with lock:
            replies.append(reply)
            if sum(r.status == 200 for r in replies) >= 3:
                some_done.set()

    threads = [threading.Thread(target=log_in, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    assert some_done.wait(timeout=30)
    revoke()
    for thread in threads:
        thread.join(timeout=60)
    assert len(replies) == 20 and {r.status for r in replies} <= {200, 401}
    return [_session_of(r) for r in replies if r.status == 200]


def test_disable_while_twenty_logins_are_in_flight(stack: Stack) -> None:
    _warm(stack)
    name, uid = _user(stack, "busy")
    issued = _logins_in_flight(
        stack, name, lambda: _admin(stack, "PATCH", f"/users/{uid}", {"disabled": True}))
    assert _accepted(stack, {f"login-{i}": s.token for i, s in enumerate(issued)}) == []
    for login in issued:
        refreshed = call("POST", stack.servers[0].url + "/auth/refresh",
                         headers={"Cookie": f"refresh_token={login.refresh}; "
                                            f"csrf_token={login.csrf}",
                                  "X-CSRF-Token": login.csrf})
        assert refreshed.status == 401


def test_revoke_all_while_twenty_logins_are_in_flight(stack: Stack) -> None:
    """Every session created before the cutoff is refused, to the microsecond; a login
    whose password was checked after it may go on (the user is not disabled)."""
    _warm(stack)
    name, uid = _user(stack, "again")
    issued = _logins_in_flight(
        stack, name, lambda: _admin(stack, "POST", f"/users/{uid}/revoke-tokens"))
    with stack.app.app_context():
        cutoff = db.session.scalars(db.select(Revocation.not_before).where(
            Revocation.kind == "user", Revocation.value == str(uid))).one()
        created = dict(db.session.execute(db.select(AuthSession.id, AuthSession.created_at)
                                          .where(AuthSession.user_id == uid)).all())
    before = {f"login-{i}": s.token for i, s in enumerate(issued)
              if created[s.claims["sid"]] <= cutoff}
    assert len(before) >= 3  # the three that were through, at least
    assert _accepted(stack, before) == []
