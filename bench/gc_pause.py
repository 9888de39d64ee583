"""Garbage-collection pauses in a worker, the suspect of the first-seen loads' p99 (issue 21).

Runs the app in process (SQLite, no Redis: the embedded default) and sends it
first-seen tokens through Flask's test client, as the fresh-token HTTP load
does, timing every collection with gc.callbacks: how many of each generation,
the longest, and the objects a full one walks. Three times: without any
freeze; with gc.freeze() once the app is loaded (gunicorn.conf.py's
post_worker_init), so the app's own long-lived objects leave the collector's
walks; and with the freeze schedule as well (app/gc_schedule.py, called after
every request as gunicorn.conf.py's post_request does), so the cache's entries
leave them too. Prints the three and writes bench/results/gc.json.
BENCH_GC_TOKENS sets the number of requests (default 20,000; BENCH_SHORT: 3,000).
"""

from __future__ import annotations

import base64
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHORT = os.environ.get("BENCH_SHORT", "0") not in ("", "0")
PASSWORD = "quartz lantern meadow 7 pebble orbit"
REQUESTS = int(os.environ.get("BENCH_GC_TOKENS", "3000" if SHORT else "20000"))


def _app(tmp: Path) -> Any:
    from flask_migrate import upgrade

    from app import create_app
    from app.security.keyops import ensure_signing_keys

    kek = base64.urlsafe_b64encode(b"g" * 32).decode()
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp}/gc.db", "KEY_ENCRYPTION_KEY": kek,
                      "ISSUER": "http://127.0.0.1"}, instance_path=str(tmp))
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        ensure_signing_keys()
    created = app.test_cli_runner().invoke(args=["users", "create", "gc", "--password-stdin"],
                                           input=PASSWORD + "\n")
    if created.exit_code != 0:
        raise RuntimeError(created.output)
    return app


def _tokens(app: Any, count: int) -> list[str]:
    """``count`` first-seen tokens of one real session (a login's)."""
    from app import state
    from app.core.tokens import access_claims, sign_token
    from app.security import snapshot

    reply = app.test_client().post("/auth/login", json={"username": "gc", "password": PASSWORD})
    if reply.status_code != 200:
        raise RuntimeError(f"login answered {reply.status_code}")
    payload = reply.get_json()["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    with app.app_context():
        signer, s, now = snapshot().current_signer(), state.settings(), int(time.time())
        assert signer is not None, "no signing key: _app makes them"
        return [sign_token(signer, access_claims(
            issuer=s.issuer, audience=s.access_audience, user_id=int(claims["sub"]),
            session_id=claims["sid"], client_id="web", scope=claims["scope"], roles=[],
            auth_time=now, amr=["pwd"],
            acr="aal1", now=now, ttl=900)) for _ in range(count)]


def _run(freeze: bool, schedule: bool = False) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="tessera-gc-"))
    app = _app(tmp)
    tokens = _tokens(app, REQUESTS)
    client = app.test_client()
    client.get("/healthz")  # the first request's lazy set-up, as a worker's warm-up
    gc.collect()
    if freeze:
        gc.freeze()
    walked_at_start = len(gc.get_objects())
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: list[float] = []

    def timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        else:
            pauses[info["generation"]].append((time.perf_counter() - started.pop()) * 1000)

    from app.gc_schedule import FreezeSchedule

    after_request = FreezeSchedule(every=1_000 if schedule else 0).request_done
    gc.callbacks.append(timer)
    try:
        begin = time.perf_counter()
        for token in tokens:
            reply = client.get("/api/me", headers={"Authorization": "Bearer " + token})
            if reply.status_code != 200:
                raise RuntimeError(f"/api/me answered {reply.status_code}: {reply.data!r}")
            after_request()  # gunicorn.conf.py's post_request
        elapsed = time.perf_counter() - begin
    finally:
        gc.callbacks.remove(timer)
    walked_at_end = len(gc.get_objects())
    gc.unfreeze()
    return {
        "freeze": freeze, "schedule": schedule, "requests": REQUESTS, "seconds": round(elapsed, 2),
        "objects_walked_by_a_full_collection": {"start": walked_at_start, "end": walked_at_end},
        "objects_per_cached_token": round((walked_at_end - walked_at_start) / REQUESTS, 1),
        "collections": {f"gen{g}": len(p) for g, p in pauses.items()},
        "longest_ms": {f"gen{g}": round(max(p, default=0.0), 2) for g, p in pauses.items()},
        "gen2_total_ms": round(sum(pauses[2]), 1),
    }


def _keyring_reloads(count: int = 20) -> dict[str, float]:
    """What the keyring reload that a request pays every KEYRING_REFRESH seconds costs, ms."""
    from app.security.context import _load_snapshot

    app = _app(Path(tempfile.mkdtemp(prefix="tessera-gc-")))
    times = []
    with app.app_context():
        for _ in range(count):
            start = time.perf_counter()
            _load_snapshot()
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"median_ms": round(times[len(times) // 2], 2), "max_ms": round(times[-1], 2)}


def main() -> dict[str, Any]:
    return {"no_freeze": _run(freeze=False), "frozen_after_load": _run(freeze=True),
            "freeze_schedule": _run(freeze=True, schedule=True),
            "keyring_reload": _keyring_reloads()}


if __name__ == "__main__":
    figures = main()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "gc.json").write_text(json.dumps(figures, indent=2) + "\n")
    reload = figures.pop("keyring_reload")
    print(f"keyring reload (on a request thread every KEYRING_REFRESH): median "
          f"{reload['median_ms']} ms, longest {reload['max_ms']} ms")
    for name, run in figures.items():
        walked = run["objects_walked_by_a_full_collection"]
        print(f"{name:<18} {run['requests']:,} first-seen requests in {run['seconds']} s: "
              f"gen2 collections {run['collections']['gen2']} (longest "
              f"{run['longest_ms']['gen2']} ms, {run['gen2_total_ms']} ms in all), "
              f"gen1 {run['collections']['gen1']} (longest {run['longest_ms']['gen1']} ms); "
              f"a full collection walks {walked['start']:,} objects at the start, "
              f"{walked['end']:,} at the end ({run['objects_per_cached_token']} per cached token)")
