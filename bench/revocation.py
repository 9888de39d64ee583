"""The revocation check's cost with an empty denylist and with 1 million live revocations.

Issue 10, acceptance 6: the cost must not grow with the denylist (within
1.2x of the empty case) on every path of SPEC §6:
- redis_mirror: the hot path, answered from the local mirror that Redis
  invalidations keep exact (no round trip in the steady state);
- redis_mget: the same check with the mirror off, one MGET per check;
- database: no Redis, the indexed query on the revocations table (SQLite here;
  set BENCH_DATABASE_URL to a migrated PostgreSQL database to measure that).

Each check looks up what a valid token carries (jti, sid, user cutoff) and
finds nothing: the case every allowed request pays. The full denylist holds 1M
entries (jti, sessions and user cutoffs) in Redis and in the database alike;
the empty one is a second Redis and a second database, so that both are
measured in turns: short batches of checks, empty and full back to back (who
goes first alternating), and each ratio is the median of the per-pair ratios
over hundreds of pairs (a 2-core VM drifts by tens of percent within a
minute, and its host steals the CPU for milliseconds at a time).
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
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import create_engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app
from app.core.revocation import RevocationService, RevocationState, redis_key
from app.extensions import db
from app.models import Revocation

LIVE_REVOCATIONS = int(os.environ.get("BENCH_REVOCATIONS", "1000000"))
TOKENS = 2000  # distinct valid tokens, checked in turn
PAIRS = int(os.environ.get("BENCH_PAIRS", "300"))  # empty/full batch pairs per path
CHECKS = 100  # checks per timed batch
BATCH = 20_000  # rows per insert while filling


def _start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing: run `make bench` (it installs it)")
    port = _free_port()
    tmp.mkdir(parents=True, exist_ok=True)
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


def _batch_seconds(service: RevocationService, lookups: list[dict[str, object]]) -> float:
    now = datetime.now(UTC)
    start = time.perf_counter()
    for lookup in lookups:
        if service.check(now=now, **lookup) is not None:  # type: ignore[arg-type]
            raise AssertionError("a valid token was refused")
    return time.perf_counter() - start


def _measure(stores: dict[str, tuple[Flask, dict[str, RevocationService]]],
             lookups: list[dict[str, object]]) -> dict[str, dict[str, list[float]]]:
    """Seconds per batch of each path on each store, in pairs (``empty``/``full``
    alternate who goes first), each in its own app's context."""
    samples: dict[str, dict[str, list[float]]] = {
        store: {path: [] for path in services} for store, (_, services) in stores.items()}
    for path in samples["full"]:
        # Negative pairs: warm connections, statements, mirrors.
        for pair in range(-TOKENS // CHECKS, PAIRS):
            start = (pair * CHECKS) % TOKENS
            batch = lookups[start:start + CHECKS]
            for store in (list(stores) if pair % 2 == 0 else list(reversed(stores))):
                app, services = stores[store]
                with app.app_context():
                    seconds = _batch_seconds(services[path], batch)
                if pair >= 0:
                    samples[store][path].append(seconds)
    return samples


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


def _second_database(url: str, tmp: Path) -> str:
    """An empty sibling of ``url``: another SQLite file, or another PostgreSQL database."""
    if not url.startswith("postgres"):
        return f"sqlite:///{tmp}/empty.db"
    server = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1),
                           isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS tessera_bench_empty"))
        connection.execute(text("CREATE DATABASE tessera_bench_empty"))
    server.dispose()
    return url.rsplit("/", 1)[0] + "/tessera_bench_empty"


def _store(database_url: str, redis_url: str,
           tmp: Path) -> tuple[Flask, dict[str, RevocationService]]:
    """A migrated app on its own database and Redis, and its three check paths."""
    kek = base64.urlsafe_b64encode(b"r" * 32).decode()
    app = create_app({"DATABASE_URL": database_url, "KEY_ENCRYPTION_KEY": kek,
                      "REDIS_URL": redis_url, "ISSUER": "http://127.0.0.1"},
                     instance_path=str(tmp))
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        client = app.extensions["tessera.redis"]
        mirrored = app.extensions["tessera.revocation"]
        # The MGET path shares the app's view of the trust row (and its connection hook).
        trust = mirrored.state.trust
        return app, {
            "redis_mirror": mirrored,
            "redis_mget": RevocationService(db.session, client,
                                            state=RevocationState(trust=trust)),
            # The query itself: the per-worker database mirror holds at most 100,000 rows
            # and hands a million to this query anyway, so it is measured alone.
            "database": RevocationService(db.session, None,
                                          state=RevocationState(local_mirror=False)),
        }


def main() -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="tessera-bench-rev-"))
    redis_full, redis_full_url = _start_redis(tmp / "full")
    redis_empty, redis_empty_url = _start_redis(tmp / "empty")
    database_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp}/full.db"
    try:
        full_app, full_services = _store(database_url, redis_full_url, tmp)
        stores = {"empty": _store(_second_database(database_url, tmp), redis_empty_url, tmp),
                  "full": (full_app, full_services)}
        with full_app.app_context():
            client = full_app.extensions["tessera.redis"]
            # One check first, without the mirror: it finds Redis not yet trusted and
            # rebuilds it (nothing to copy yet), as a running service would have.
            _batch_seconds(full_services["redis_mget"], _lookups()[:1])
            started = time.perf_counter()
            _fill(client, _entries(LIVE_REVOCATIONS))
            fill_seconds = time.perf_counter() - started
            redis_keys = client.dbsize()
        samples = _measure(stores, _lookups())
    finally:
        for process in (redis_full, redis_empty):
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    paths = {}
    for path in samples["full"]:
        empty, full = samples["empty"][path], samples["full"][path]
        paths[path] = {"empty_per_s": round(CHECKS / statistics.median(empty)),
                       "full_per_s": round(CHECKS / statistics.median(full)),
                       "cost_ratio": round(statistics.median(
                           f / e for e, f in zip(empty, full, strict=False)), 3)}
    return {
        "live_revocations": LIVE_REVOCATIONS,
        "redis_keys": redis_keys,
        "database": "postgresql" if database_url.startswith("postgres") else "sqlite",
        "fill_seconds": round(fill_seconds, 1),
        "pairs": PAIRS,
        "checks_per_batch": CHECKS,
        "paths": paths,
    }


if __name__ == "__main__":
    figures = main()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"revocation-{figures['database']}.json").write_text(
        json.dumps(figures, indent=2) + "\n")
    print(f"{figures['live_revocations']:,} live revocations "
          f"({figures['redis_keys']:,} Redis keys; {figures['database']}; "
          f"filled in {figures['fill_seconds']} s)")
    for name, row in figures["paths"].items():  # type: ignore[attr-defined]
        print(f"{name:<13} empty {row['empty_per_s']:>9,}/s   full {row['full_per_s']:>9,}/s   "
              f"cost x{row['cost_ratio']:.3f} (goal <= 1.2)")
