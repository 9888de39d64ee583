"""The revocation check's cost with an empty denylist and with 1 million live revocations.

Issue 10, acceptance 6: the cost must not grow with the denylist (within
1.2x of the empty case) on every path of SPEC §6:
- redis_mirror: the hot path, answered from the local mirror that Redis
  invalidations keep exact (no round trip in the steady state);
- redis_mget: the same check with the mirror off, one MGET per check;
- database: no Redis, the indexed query on the revocations table (SQLite here;
  set BENCH_DATABASE_URL to a migrated PostgreSQL database to measure that).

Each check looks up what a valid token carries (jti, sid, user cutoff) and
finds nothing: the case every allowed request pays. The denylist holds 1M
entries (jti, sessions and user cutoffs) in Redis and in the database alike.
Prints each rate and ratio and writes bench/results/revocation-<database>.json.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from flask_migrate import upgrade
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app
from app.core.revocation import RevocationService, RevocationState, redis_key
from app.extensions import db
from app.models import Revocation

LIVE_REVOCATIONS = int(os.environ.get("BENCH_REVOCATIONS", "1000000"))
TOKENS = 2000  # distinct valid tokens checked per round
ROUNDS = 7
BATCH = 20_000


def _start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing: run `make bench` (it installs it)")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            return process, url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _lookups() -> list[dict[str, object]]:
    """What valid tokens carry: a jti, a session and a user, none of them revoked."""
    now = int(time.time())
    return [{"jti": uuid.uuid4().hex, "sid": uuid.uuid4().hex, "user_id": 5_000_000 + i,
             "iat": now, "token_hash": None} for i in range(TOKENS)]


def _rate(service: RevocationService, lookups: list[dict[str, object]]) -> float:
    now = datetime.now(UTC)
    start = time.perf_counter()
    for lookup in lookups:
        if service.check(now=now, **lookup) is not None:  # type: ignore[arg-type]
            raise AssertionError("a valid token was refused")
    return len(lookups) / (time.perf_counter() - start)


def _measure(services: dict[str, RevocationService],
             lookups: list[dict[str, object]]) -> dict[str, float]:
    """Median checks per second of each path, rounds interleaved so noise hits all alike."""
    for service in services.values():  # warm: connections, statement cache, the mirror
        _rate(service, lookups)
    samples: dict[str, list[float]] = {name: [] for name in services}
    for _ in range(ROUNDS):
        for name, service in services.items():
            samples[name].append(_rate(service, lookups))
    return {name: statistics.median(values) for name, values in samples.items()}


def _entries(count: int) -> list[tuple[str, str]]:
    """A denylist of ``count``: mostly token ids, some sessions, a few users."""
    sessions, users = count // 10, count // 100
    return ([("jti", uuid.uuid4().hex) for _ in range(count - sessions - users)]
            + [("sid", uuid.uuid4().hex) for _ in range(sessions)]
            + [("user", str(i + 1)) for i in range(users)])


def _fill(client: redis.Redis, entries: list[tuple[str, str]]) -> None:
    now = datetime.now(UTC)
    expires = now + timedelta(hours=2)
    cutoff = int(now.timestamp() * 1_000_000)
    for start in range(0, len(entries), BATCH):
        chunk = entries[start:start + BATCH]
        pipe = client.pipeline(transaction=False)
        for kind, value in chunk:
            pipe.set(redis_key(kind, value), cutoff if kind == "user" else 1, px=7_200_000)
        pipe.execute()
        db.session.execute(insert(Revocation), [
            {"kind": kind, "value": value, "created_at": now, "expires_at": expires,
             "not_before": now if kind == "user" else None, "reason": "bench"}
            for kind, value in chunk])
        db.session.commit()


def main() -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="tessera-bench-rev-"))
    redis_process, redis_url = _start_redis(tmp)
    database_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
    kek = base64.urlsafe_b64encode(b"r" * 32).decode()
    app = create_app({"DATABASE_URL": database_url, "KEY_ENCRYPTION_KEY": kek,
                      "REDIS_URL": redis_url}, instance_path=str(tmp))
    try:
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            client = app.extensions["tessera.redis"]
            services = {
                "redis_mirror": app.extensions["tessera.revocation"],
                "redis_mget": RevocationService(db.session, client, state=RevocationState()),
                "database": RevocationService(db.session, None, state=RevocationState()),
            }
            lookups = _lookups()
            empty = _measure(services, lookups)
            started = time.perf_counter()
            _fill(client, _entries(LIVE_REVOCATIONS))
            fill_seconds = time.perf_counter() - started
            full = _measure(services, _lookups())  # new tokens: nothing cached from before
            redis_keys = client.dbsize()
    finally:
        redis_process.terminate()
        redis_process.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "live_revocations": LIVE_REVOCATIONS,
        "redis_keys": redis_keys,
        "database": "postgresql" if database_url.startswith("postgres") else "sqlite",
        "fill_seconds": round(fill_seconds, 1),
        "paths": {
            name: {"empty_per_s": round(empty[name]), "full_per_s": round(full[name]),
                   "cost_ratio": round(empty[name] / full[name], 3)}
            for name in services
        },
    }


if __name__ == "__main__":
    figures = main()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"revocation-{figures['database']}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{figures['live_revocations']:,} live revocations "
          f"({figures['redis_keys']:,} Redis keys; {figures['database']}; "
          f"filled in {figures['fill_seconds']} s)")
    for name, row in figures["paths"].items():  # type: ignore[attr-defined]
        print(f"{name:<13} empty {row['empty_per_s']:>9,}/s   full {row['full_per_s']:>9,}/s   "
              f"cost x{row['cost_ratio']:.3f} (goal <= 1.2)")
