"""HTTP speed on loopback with wrk, in one run, under one gunicorn configuration (issue 10).

Starts its own redis-server, a Tessera with REDIS_URL, a Tessera without it
(embedded revocation store), and the flask-jwt-extended reference app, all
with the same gunicorn settings; drives each endpoint with wrk; prints rates,
latency p50/p99 and the ratios; writes bench/results/http.json.

On a machine with two or more cores the servers under test run on CPU 0 and
wrk and redis-server on CPU 1 (BENCH_PIN=0 turns this off): otherwise the load
generator competes with the server for the same two cores, and the scheduler's
placement moves a rate by tens of percent from one run to the next.
"""

from __future__ import annotations

import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.http import call
from tests.support.servers import AppServer, RedisServer

DURATION = os.environ.get("BENCH_DURATION", "2s")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "11"))
LOGIN_ROUNDS = int(os.environ.get("BENCH_LOGIN_ROUNDS", "7"))
REFRESH_ROUNDS = int(os.environ.get("BENCH_REFRESH_ROUNDS", "5"))
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "4")
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
PIN = os.environ.get("BENCH_PIN", "1") != "0" and (os.cpu_count() or 1) >= 2
SERVER_CPUS, LOAD_CPUS = {0}, {1}
PASSWORD = "correct horse battery staple at speed"
KEK = base64.urlsafe_b64encode(b"h" * 32).decode()
FRESH_TOKENS = 20_000


def wrk(url: str, script: str | None = None, *, connections: str = CONNECTIONS,
        threads: str = "1", env: dict[str, str] | None = None,
        duration: str = DURATION) -> dict[str, float]:
    """Run wrk; return requests/s and latency p50/p99 in milliseconds."""
    command = ["wrk", "-t", threads, "-c", connections, "-d", duration, "--latency", url]
    if PIN:
        command = ["taskset", "-c", ",".join(map(str, LOAD_CPUS)), *command]
    if script:
        command += ["-s", str(ROOT / "bench" / "wrk" / script)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120,
                         env={**os.environ, **(env or {})}, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} error responses\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rate": round(rate, 1), "p50_ms": _percentile(out, "50%"),
            "p99_ms": _percentile(out, "99%")}


def _pin(pid: int, cpus: set[int]) -> None:
    """Put ``pid``, its threads and its child processes (gunicorn's workers) on ``cpus``."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), cpus)
        children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        for child in children:
            _pin(int(child), cpus)


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median rate (its latencies come with it)."""
    return sorted(runs, key=lambda run: run["rate"])[len(runs) // 2]


def _percentile(out: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    assert match, out
    value, unit = float(match.group(1)), match.group(2)
    return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 3)


def _prepare_database(tmp: Path) -> str:
    """A migrated SQLite database with signing keys and the bench user."""
    url = f"sqlite:///{tmp}/bench.db"
    env = {**os.environ, "FLASK_APP": "wsgi", "TESSERA_DATABASE_URL": url,
           "TESSERA_KEY_ENCRYPTION_KEY": KEK, "TESSERA_INSTANCE_PATH": str(tmp),
           "TESSERA_ISSUER": "http://127.0.0.1"}
    flask = str(Path(sys.executable).parent / "flask")
    for args, stdin in ((["db", "upgrade"], None), (["keys", "ensure"], None),
                        (["users", "create", "bench", "--password-stdin"], PASSWORD + "\n")):
        subprocess.run([flask, *args], cwd=ROOT, env=env, input=stdin, text=True, check=True,
                       capture_output=True, timeout=120)
    return url


def _tessera(url: str, tmp: Path, redis_url: str | None) -> AppServer:
    env = {"TESSERA_DATABASE_URL": url, "TESSERA_KEY_ENCRYPTION_KEY": KEK,
           "TESSERA_ISSUER": "http://127.0.0.1", "TESSERA_COOKIE_SECURE": "false",
           "TESSERA_INSTANCE_PATH": str(tmp), "TESSERA_ACCESS_LOG": "",
           "TESSERA_RATELIMIT_REFRESH": "100000000/minute",
           "TESSERA_RATELIMIT_LOGIN_PER_IP": "100000000/minute"}
    if redis_url:
        env["TESSERA_REDIS_URL"] = redis_url
    return AppServer(env, workers=WORKERS, threads=THREADS).start()


def _reference(tmp: Path, redis_url: str) -> AppServer:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp / "ref.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp / "ref.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    env = {"BENCH_PRIVATE_KEY": str(tmp / "ref.pem"), "BENCH_PUBLIC_KEY": str(tmp / "ref.pub"),
           "BENCH_REDIS_URL": redis_url, "TESSERA_ACCESS_LOG": ""}
    return AppServer(env, workers=WORKERS, threads=THREADS,
                     wsgi="bench.reference_app:app").start()


def _login(server: AppServer) -> tuple[str, str, str]:
    reply = call("POST", server.url + "/auth/login",
                 json_body={"username": "bench", "password": PASSWORD})
    assert reply.status == 200, reply.body
    jar: SimpleCookie = SimpleCookie()
    for value in reply.set_cookies:
        jar.load(value)
    return reply.json()["access_token"], jar["refresh_token"].value, jar["csrf_token"].value


def _refresh_turn(server: AppServer, tmp: Path) -> dict[str, float]:
    """wrk rotating two sessions' refresh cookies, each connection its own session.

    The sessions are new for each turn: a turn ends holding rotated tokens that
    only wrk saw, and presenting an old one again would be reuse (SPEC §5).
    """
    pairs = [_login(server)[1:] for _ in range(2)]
    path = tmp / "refresh.txt"
    path.write_text("\n".join(f"{refresh} {csrf}" for refresh, csrf in pairs) + "\n")
    return wrk(server.url, "refresh.lua", connections="2", threads="2",
               env={"BENCH_REFRESH_FILE": str(path)})


def _fresh_tokens(url: str, tmp: Path, sid_source: str) -> Path:
    """Many valid tokens of one real session, each with its own jti (first-seen tokens)."""
    from app import create_app, state
    from app.core.tokens import access_claims, sign_token
    from app.security import snapshot

    claims = json.loads(base64.urlsafe_b64decode(sid_source.split(".")[1] + "=="))
    app = create_app({"DATABASE_URL": url, "KEY_ENCRYPTION_KEY": KEK,
                      "ISSUER": "http://127.0.0.1"}, instance_path=str(tmp))
    path = tmp / "fresh.txt"
    with app.app_context():
        signer = snapshot().current_signer()
        s = state.settings()
        now = int(time.time())
        lines = [sign_token(signer, access_claims(
            issuer=s.issuer, audience=s.access_audience, user_id=int(claims["sub"]),
            session_id=claims["sid"], client_id="web", scope=claims["scope"], roles=[],
            auth_time=now, amr=["pwd"], acr="aal1", now=now, ttl=900))
            for _ in range(FRESH_TOKENS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _on_cpus(cpus: set[int], fn: Any) -> Any:
    """``fn()`` with this process on ``cpus`` (when pinning), then back where it was."""
    before = os.sched_getaffinity(0)
    if PIN:
        os.sched_setaffinity(0, cpus)
    try:
        return fn()
    finally:
        os.sched_setaffinity(0, before)


def _argon2_verifier() -> Any:
    """One argon2id verification with the configured parameters, timed in ms."""
    from app.core.passwords import hash_password, verify_password

    stored = hash_password(PASSWORD)

    def once() -> float:
        start = time.perf_counter()
        verify_password(stored, PASSWORD)
        return (time.perf_counter() - start) * 1000
    return once


def main() -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
    redis_server = RedisServer()
    redis_server.start()
    servers: list[AppServer] = []
    try:
        url = _prepare_database(tmp)
        with_redis = _tessera(url, tmp, redis_server.url)
        servers.append(with_redis)
        without_redis = _tessera(url, tmp, None)
        servers.append(without_redis)
        reference = _reference(tmp, redis_server.url)
        servers.append(reference)
        if PIN:
            _pin(redis_server.process.pid, LOAD_CPUS)  # type: ignore[union-attr]
            for server in servers:
                _pin(server.process.pid, SERVER_CPUS)  # type: ignore[union-attr]
        return _measure(with_redis, without_redis, reference, url, tmp)
    finally:
        for server in servers:
            server.stop()
        redis_server.stop()


def _measure(with_redis: AppServer, without_redis: AppServer, reference: AppServer,
             url: str, tmp: Path) -> dict[str, Any]:
    token, _, _ = _login(with_redis)
    fresh = _fresh_tokens(url, tmp, token)
    ref_token = call("POST", reference.url + "/mint").json()["access_token"]
    me = "/api/me"
    # In this order each compared pair runs back to back (jwks and unauthenticated,
    # unauthenticated and me_reused_redis, me_reused_redis and reference_me), and
    # every other round runs backwards, so a drift of the machine's speed within a
    # round favours neither side of a pair (see _paired_ratio).
    loads: dict[str, tuple[str, str | None, dict[str, str]]] = {
        "jwks": (with_redis.url + "/.well-known/jwks.json", None, {}),
        "unauthenticated": (with_redis.url + "/healthz", None, {}),
        "me_reused_redis": (with_redis.url + me, "bearer.lua", {"BENCH_TOKEN": token}),
        "reference_me": (reference.url + me, "bearer.lua", {"BENCH_TOKEN": ref_token}),
        "reference_unauthenticated": (reference.url + "/healthz", None, {}),
        "me_fresh_redis": (with_redis.url + me, "fresh_tokens.lua",
                           {"BENCH_TOKENS_FILE": str(fresh)}),
        "me_reused_db": (without_redis.url + me, "bearer.lua", {"BENCH_TOKEN": token}),
        "me_fresh_db": (without_redis.url + me, "fresh_tokens.lua",
                        {"BENCH_TOKENS_FILE": str(fresh)}),
    }
    for target, script, env in loads.values():  # warm every worker's caches and pools
        wrk(target, script, env=env, duration="1s")
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in loads}
    for round_ in range(ROUNDS):
        names = list(loads) if round_ % 2 == 0 else list(reversed(loads))
        for name in names:
            target, script, env = loads[name]
            samples[name].append(wrk(target, script, env=env))
    results: dict[str, Any] = {name: _median(runs) for name, runs in samples.items()}
    # Short turns, the median kept: one stall of the VM's disk or CPU (a one-off 2 s
    # stall once turned a single run into 2 requests/s) must not make the figure.
    results["refresh"] = _median([_refresh_turn(with_redis, tmp) for _ in range(REFRESH_ROUNDS)])
    # Login against one argon2id verification, in short turns: argon2id is bound by
    # memory bandwidth, which this VM's neighbours move by a third within a minute.
    argon2 = _argon2_verifier()
    wrk(with_redis.url + "/auth/login", "login.lua", connections="1", duration="1s",
        env={"BENCH_PASSWORD": PASSWORD})  # warm up: each worker's first login is slow
    logins, hashes = [], []
    for _ in range(LOGIN_ROUNDS):
        logins.append(wrk(with_redis.url + "/auth/login", "login.lua", connections="1",
                          duration="2s", env={"BENCH_PASSWORD": PASSWORD}))
        hashes.append(_on_cpus(SERVER_CPUS, lambda: statistics.median(argon2() for _ in range(9))))
    results["login"] = _median(logins)
    results["argon2id_ms"] = round(statistics.median(hashes), 3)
    results["ratios"] = {
        name: _paired_ratio(samples, load, base)
        for name, (load, base) in _RATE_RATIOS.items()
    }
    results["ratios"]["login_p50_vs_argon2id"] = round(statistics.median(
        login["p50_ms"] / argon2 for login, argon2 in zip(logins, hashes)), 3)
    return results


# ratio name -> (load, baseline): rates compared within each round.
_RATE_RATIOS = {
    "me_reused_redis_vs_unauthenticated": ("me_reused_redis", "unauthenticated"),
    "me_reused_redis_vs_reference": ("me_reused_redis", "reference_me"),
    "jwks_vs_unauthenticated": ("jwks", "unauthenticated"),
    "me_reused_db_vs_unauthenticated": ("me_reused_db", "unauthenticated"),
    "me_fresh_redis_vs_unauthenticated": ("me_fresh_redis", "unauthenticated"),
}


def _paired_ratio(samples: dict[str, list[dict[str, float]]], load: str, base: str) -> float:
    """The median over rounds of load/base, each measured in the same round.

    The machine's speed drifts between rounds; within a round both sides see
    the same drift, so the per-round ratio is steadier than a ratio of medians.
    """
    per_round = [a["rate"] / b["rate"] for a, b in zip(samples[load], samples[base])]
    return round(statistics.median(per_round), 3)


if __name__ == "__main__":
    figures = main()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "http.json").write_text(json.dumps(figures, indent=2) + "\n")
    for name, value in figures.items():
        if isinstance(value, dict) and "rate" in value:
            print(f"{name:<26} {value['rate']:>10,.0f}/s  p50 {value['p50_ms']:>8.3f} ms"
                  f"  p99 {value['p99_ms']:>8.3f} ms")
    print(f"{'argon2id verify':<26} {figures['argon2id_ms']:>10.3f} ms (median)")
    goals = {"me_reused_redis_vs_unauthenticated": ">= 0.75",
             "me_reused_redis_vs_reference": ">= 2.0", "jwks_vs_unauthenticated": ">= 0.95",
             "login_p50_vs_argon2id": "<= 1.3"}
    for name, ratio in figures["ratios"].items():
        print(f"{name:<40} {ratio:>7}  {('goal ' + goals[name]) if name in goals else ''}")
