"""wrk as the load generator: one run's rate and latency percentiles, and CPU pinning.

Shared by bench/http_load.py and its helpers. Durations and round counts come
from the environment (BENCH_*); BENCH_SHORT=1 shrinks them all for a quick
check of the machinery (figures then are only indicative).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHORT = os.environ.get("BENCH_SHORT", "0") not in ("", "0")


def _setting(name: str, full: str, short: str) -> str:
    return os.environ.get(name, short if SHORT else full)


DURATION = _setting("BENCH_DURATION", "2s", "1s")
ROUNDS = int(_setting("BENCH_ROUNDS", "7", "3"))
LOGIN_ROUNDS = int(_setting("BENCH_LOGIN_ROUNDS", "7", "2"))
REFRESH_ROUNDS = int(_setting("BENCH_REFRESH_ROUNDS", "5", "2"))
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "4")
PIN = os.environ.get("BENCH_PIN", "1") != "0" and (os.cpu_count() or 1) >= 2
SERVER_CPUS, LOAD_CPUS = {0}, {1}
# The latency percentiles wrk --latency prints.
PERCENTILES = ("50%", "75%", "90%", "99%")
# A load whose p99 exceeds this many times its p50 is flagged (issue 21).
TAIL_LIMIT = 3.0


class LoadError(RuntimeError):
    """wrk saw error responses or socket errors: the figure would not be the load's."""


def wrk(url: str, script: str | None = None, *, connections: str = CONNECTIONS,
        threads: str = "1", env: dict[str, str] | None = None,
        duration: str | None = None) -> dict[str, float]:
    """Run wrk; requests/s and the latency percentiles in milliseconds (p50_ms, p99_ms...)."""
    command = ["wrk", "-t", threads, "-c", connections, "-d", duration or DURATION,
               "--latency", url]
    if PIN:
        command = ["taskset", "-c", ",".join(map(str, sorted(LOAD_CPUS))), *command]
    if script:
        command += ["-s", str(ROOT / "bench" / "wrk" / script)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=400,
                         env={**os.environ, **(env or {})}, check=True).stdout
    return parse(url, out)


def parse(url: str, out: str) -> dict[str, float]:
    """The figures of one wrk output; refuses a run with errors."""
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise LoadError(f"{url}: {non_2xx.group(1)} error responses\n{out}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors and any(int(n) for n in errors.groups()):
        raise LoadError(f"{url}: socket errors\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise LoadError(f"{url}: no rate in wrk's output\n{out}")
    requests = re.search(r"(\d+) requests in", out)
    figures = {"rate": round(float(rate.group(1)), 1),
               "requests": float(requests.group(1)) if requests else 0.0}
    for label in PERCENTILES:
        figures[f"p{label[:-1]}_ms"] = _percentile(out, label)
    # The thread statistics line: average, stdev, max (the single worst request).
    latency = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s", out, re.MULTILINE)
    if latency:
        figures["max_ms"] = _ms(float(latency.group(1)), latency.group(2))
    return figures


def _ms(value: float, unit: str) -> float:
    return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 3)


def _percentile(out: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if match is None:
        raise LoadError(f"no {label} latency in wrk's output\n{out}")
    return _ms(float(match.group(1)), match.group(2))


def pin(pid: int, cpus: set[int]) -> None:
    """Put ``pid``, its threads and its child processes (gunicorn's workers) on ``cpus``."""
    if not PIN:
        return
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), cpus)
        children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        for child in children:
            pin(int(child), cpus)


def on_cpus(cpus: set[int], fn: Any) -> Any:
    """``fn()`` with this process on ``cpus`` (when pinning), then back where it was."""
    before = os.sched_getaffinity(0)
    if PIN:
        os.sched_setaffinity(0, cpus)
    try:
        return fn()
    finally:
        os.sched_setaffinity(0, before)


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median rate (its latencies come with it)."""
    return sorted(runs, key=lambda run: run["rate"])[len(runs) // 2]
