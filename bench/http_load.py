"""HTTP speed with wrk, in one run: every configuration side by side (issues 10 and 21).

Servers (bench/topology.py): Tessera on SQLite and on PostgreSQL (BENCH_DATABASE_URL),
each with and without Redis; the flask-jwt-extended reference; and the production
topology, nginx + TLS in front of two instances, Tessera's and the reference's.
Loads: /healthz, the JWKS, GET /api/me with a reused token and with a first-seen
token per request, in rounds (compared loads back to back, every other round in
reverse); refresh and login in turns of their own. Every load's p50 and p99 are
kept and a p99 over 3x its p50 flagged. Then each worker's resident memory with
its verified-token cache filled with BENCH_CACHE_TOKENS distinct tokens.

Writes bench/results/http.json and the charts (bench/charts.py); prints the table
(bench/report.py). BENCH_SHORT=1 runs short turns to check the machinery.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import charts, fixtures, memory, report, topology
from bench.wrk_run import (
    LOAD_CPUS,
    LOGIN_ROUNDS,
    REFRESH_ROUNDS,
    ROUNDS,
    SERVER_CPUS,
    SHORT,
    TAIL_LIMIT,
    median_run,
    on_cpus,
    pin,
    wrk,
)
from tests.support.http import call

FRESH_TOKENS = int(os.environ.get("BENCH_FRESH_TOKENS", "6000" if SHORT else "40000"))
CACHE_TOKENS = int(os.environ.get("BENCH_CACHE_TOKENS", "2000" if SHORT else "50000"))

Load = tuple[str, str | None, dict[str, str]]  # url, wrk script, its environment


def _loads(servers: topology.Servers, tokens: dict[str, str],
           fresh: dict[str, Path]) -> dict[str, Load]:
    """Every load of the rounds, in round order: each compared pair back to back."""
    t, me = servers.tessera, "/api/me"

    def bearer(token: str) -> dict[str, str]:
        return {"BENCH_TOKEN": token}

    def first_seen(database: str) -> dict[str, str]:
        return {"BENCH_TOKENS_FILE": str(fresh[database])}

    loads: dict[str, Load] = {
        "jwks": (t["redis"].url + "/.well-known/jwks.json", None, {}),
        "unauthenticated": (t["redis"].url + "/healthz", None, {}),
        "me_reused_redis": (t["redis"].url + me, "bearer.lua", bearer(tokens["sqlite"])),
        "reference_me": (servers.reference.url + me, "bearer.lua",  # type: ignore[union-attr]
                         bearer(tokens["reference"])),
        "reference_unauthenticated": (servers.reference.url + "/healthz", None, {}),  # type: ignore[union-attr]
        "me_fresh_redis": (t["redis"].url + me, "fresh_tokens.lua", first_seen("sqlite")),
        "me_reused_db": (t["db"].url + me, "bearer.lua", bearer(tokens["sqlite"])),
        "me_fresh_db": (t["db"].url + me, "fresh_tokens.lua", first_seen("sqlite")),
    }
    if "pg" in servers.databases:
        loads |= {
            "unauthenticated_pg": (t["db_pg"].url + "/healthz", None, {}),
            "me_reused_db_pg": (t["db_pg"].url + me, "bearer.lua", bearer(tokens["pg"])),
            "me_fresh_db_pg": (t["db_pg"].url + me, "fresh_tokens.lua", first_seen("pg")),
            "me_reused_redis_pg": (t["redis_pg"].url + me, "bearer.lua", bearer(tokens["pg"])),
            "me_fresh_redis_pg": (t["redis_pg"].url + me, "fresh_tokens.lua", first_seen("pg")),
        }
    if servers.proxies:
        edge, ref_edge = servers.proxies["tessera"].url, servers.proxies["reference"].url
        loads |= {
            "proxy_unauthenticated": (edge + "/healthz", None, {}),
            "proxy_me": (edge + me, "bearer.lua", bearer(tokens["proxy"])),
            "proxy_reference_me": (ref_edge + me, "bearer.lua", bearer(tokens["reference"])),
            "proxy_reference_unauthenticated": (ref_edge + "/healthz", None, {}),
        }
    return loads


def _rounds(loads: dict[str, Load]) -> dict[str, list[dict[str, float]]]:
    """A warm-up turn per load, then ROUNDS rounds; first-seen loads never repeat a token."""
    offsets = {name: 0.0 for name in loads}

    def run(name: str, duration: str | None = None) -> dict[str, float]:
        url, script, env = loads[name]
        if script == "fresh_tokens.lua":
            env = {**env, "BENCH_TOKENS_OFFSET": str(int(offsets[name]))}
        figures = wrk(url, script, env=env, duration=duration)
        offsets[name] += figures["requests"] + 8  # + what wrk sent but did not count
        return figures

    for name in loads:  # warm every worker's caches, pools and connections
        run(name, duration="1s")
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in loads}
    for round_ in range(ROUNDS):
        for name in (list(loads) if round_ % 2 == 0 else list(reversed(loads))):
            samples[name].append(run(name))
    for name, sent in offsets.items():
        if loads[name][1] == "fresh_tokens.lua" and sent > FRESH_TOKENS:
            print(f"note: {name} sent {sent:.0f} requests over {FRESH_TOKENS} tokens: "
                  "some were no longer first-seen (raise BENCH_FRESH_TOKENS)", file=sys.stderr)
    return samples


def _refresh(server: Any, base_url: str, tmp: Path,
             name: str) -> tuple[dict[str, float], list[float]]:
    """Refresh turns, each followed by a /healthz turn on the same server: the median
    turn and the per-turn ratios (refresh / healthz)."""
    turns, ratios = [], []
    for _ in range(REFRESH_ROUNDS):
        path = fixtures.refresh_file(server, tmp, name)
        refresh = wrk(server.url, "refresh.lua", connections="2", threads="2",
                      env={"BENCH_REFRESH_FILE": str(path)})
        healthz = wrk(base_url + "/healthz")
        turns.append(refresh)
        ratios.append(refresh["rate"] / healthz["rate"])
    return median_run(turns), ratios


def _argon2_verifier() -> Any:
    """One argon2id verification with the configured parameters, timed in ms."""
    from app.core.passwords import hash_password, verify_password

    stored = hash_password(fixtures.PASSWORD)

    def once() -> float:
        start = time.perf_counter()
        verify_password(stored, fixtures.PASSWORD)
        return (time.perf_counter() - start) * 1000
    return once


def _login(url: str) -> tuple[dict[str, float], list[float], list[float]]:
    """Login turns of one connection, each followed by argon2id verifications on the
    servers' CPU: the median turn, per-turn p50/argon2id ratios, argon2id ms."""
    argon2 = _argon2_verifier()
    env = {"BENCH_PASSWORD": fixtures.PASSWORD}
    wrk(url + "/auth/login", "login.lua", connections="1", duration="1s", env=env)  # warm-up
    logins, hashes = [], []
    for _ in range(LOGIN_ROUNDS):
        logins.append(wrk(url + "/auth/login", "login.lua", connections="1", env=env))
        hashes.append(on_cpus(SERVER_CPUS, lambda: statistics.median(argon2() for _ in range(9))))
    ratios = [login["p50_ms"] / ms for login, ms in zip(logins, hashes, strict=False)]
    return median_run(logins), ratios, hashes


def _per_round(samples: dict[str, list[dict[str, float]]], load: str, base: str) -> list[float]:
    """load/base rates, each pair measured in the same round (the machine drifts between)."""
    return [round(a["rate"] / b["rate"], 4)
            for a, b in zip(samples[load], samples[base], strict=False)]


# A worker's Redis mirror answers a token's own jti without a round trip once the token
# was issued a minute after the worker began tracking (app/core/revocation_born.py): the
# first-seen tokens are signed that long after every worker's first check, as the
# tokens a worker sees once it has run for a minute are.
TRACKING_SETTLED = 61.0


def _start_tracking(servers: topology.Servers, tokens: dict[str, str]) -> None:
    """A second of checks on every Tessera server with Redis (each worker's first check
    sets its mirror up), then the wait until first-seen tokens may be signed."""
    began = time.monotonic()
    targets = [(servers.tessera["redis"].url, tokens["sqlite"])]
    if "pg" in tokens:
        targets.append((servers.tessera["redis_pg"].url, tokens["pg"]))
    if "proxy" in tokens:
        targets.append((servers.proxies["tessera"].url, tokens["proxy"]))
    for url, token in targets:
        wrk(url + "/api/me", "bearer.lua", env={"BENCH_TOKEN": token}, duration="1s")
    time.sleep(max(0.0, began + TRACKING_SETTLED - time.monotonic()))


def measure(servers: topology.Servers) -> dict[str, Any]:
    tmp, t = servers.tmp, servers.tessera
    tokens = {"sqlite": fixtures.login(t["redis"].url)[0],
              "reference": call("POST", servers.reference.url + "/mint")  # type: ignore[union-attr]
              .json()["access_token"]}
    if "pg" in servers.databases:
        tokens["pg"] = fixtures.login(t["redis_pg"].url)[0]
    if servers.instances:
        tokens["proxy"] = fixtures.login(servers.instances[0].url)[0]
    _start_tracking(servers, tokens)
    fresh = {"sqlite": fixtures.sign_tokens(servers.databases["sqlite"], tmp, tokens["sqlite"],
                                            FRESH_TOKENS, "sqlite")}
    if "pg" in servers.databases:
        fresh["pg"] = fixtures.sign_tokens(servers.databases["pg"], tmp, tokens["pg"],
                                           FRESH_TOKENS, "pg")
    loads = _loads(servers, tokens, fresh)
    samples = _rounds(loads)
    result: dict[str, Any] = {"loads": {name: median_run(runs) for name, runs in samples.items()},
                              "rounds": {}, "ratios": {},
                              # In how many rounds each load broke the tail rule: a one-off
                              # stall or a steady cause.
                              "tail_rounds": {name: [sum(run["p99_ms"] > TAIL_LIMIT * run["p50_ms"]
                                                         for run in runs), len(runs)]
                                              for name, runs in samples.items()}}
    for load in loads:
        if load in report.BASES:
            result["rounds"][report.ratio_name(load)] = _per_round(
                samples, load, report.BASES[load])
    for name, (load, base) in report.PAIRS.items():
        if load in samples and base in samples:
            result["rounds"][name] = _per_round(samples, load, base)
    refreshes = [("refresh_redis", "redis", "redis"), ("refresh_db", "db", "redis")]
    if "pg" in servers.databases:
        refreshes += [("refresh_redis_pg", "redis_pg", "db_pg"),
                      ("refresh_db_pg", "db_pg", "db_pg")]
    for name, server, base in refreshes:
        result["loads"][name], result["rounds"][report.ratio_name(name)] = _refresh(
            t[server], t[base].url, tmp, name)
    argon2_ms: list[float] = []
    for name, server in (("login", "redis"), ("login_pg", "redis_pg")):
        if server in t:
            result["loads"][name], ratios, hashes = _login(t[server].url)
            result["rounds"][f"{name}_p50_vs_argon2id"] = [round(r, 4) for r in ratios]
            argon2_ms += hashes
    result["argon2id_ms"] = round(statistics.median(argon2_ms), 3)
    result["ratios"] = {name: round(statistics.median(values), 3)
                        for name, values in result["rounds"].items()}
    result["goals"] = {name: list(goal) for name, goal in report.GOALS.items()}
    masters = {name: server.process.pid for name, server in t.items()}  # type: ignore[union-attr]
    result["rss_after_loads_kib"] = memory.rss_report(masters)
    cache = fixtures.sign_tokens(servers.databases["sqlite"], tmp, tokens["sqlite"],
                                 CACHE_TOKENS, "cache").read_text().split()
    # Both CPUs for the fill: it only has to be done, not measured for speed.
    pin(t["db"].process.pid, SERVER_CPUS | LOAD_CPUS)  # type: ignore[union-attr]
    result["memory"] = {"server": "db (SQLite, no Redis)", **memory.fill_caches(
        t["db"].process.pid, t["db"].port, cache)}  # type: ignore[union-attr]
    return result


def main() -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
    servers = topology.start(tmp, os.environ.get("BENCH_DATABASE_URL"))
    try:
        result = measure(servers)
    finally:
        servers.stop()
    result["config"] = {"rounds": ROUNDS, "short": SHORT, "workers": topology.WORKERS,
                        "threads": topology.THREADS, "proxy_workers": topology.PROXY_WORKERS,
                        "fresh_tokens": FRESH_TOKENS, "cache_tokens": CACHE_TOKENS}
    return result


def print_memory(figures: dict[str, Any]) -> None:
    fill = figures["memory"]
    print(f"\nresident memory per worker, {fill['server']}, "
          f"cache filled with {fill['tokens_per_worker']:,} distinct tokens each:")
    for worker in fill["workers"]:
        print(f"  worker {worker['pid']}: {worker['rss_before_kib'] / 1024:.1f} MiB before, "
              f"{worker['rss_full_kib'] / 1024:.1f} MiB full "
              f"({worker['bytes_per_token']:,} bytes per cached token)")
    others = ", ".join(f"{name} {max(kib) / 1024:.0f} MiB" for name, kib
                       in figures["rss_after_loads_kib"].items())
    print(f"  largest worker of each server after the loads: {others}")


if __name__ == "__main__":
    # bench.sh's timeout sends SIGTERM: exit through main's finally, which stops the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    figures = main()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "http.json").write_text(json.dumps(figures, indent=2) + "\n")
    written = charts.write(figures, out)
    print(report.format_table(figures))
    print_memory(figures)
    print("charts: " + ", ".join(str(path.relative_to(ROOT)) for path in written))
