"""The HTTP bench's goals and its printed table (issue 21).

One row per load: rate, p50, p99, p99/p50, the ratio to its configuration's
``/healthz`` (the median of per-round ratios when the load ran in the rounds),
the goal of that ratio and pass/fail. A row fails when its ratio misses its
goal or when its p99 is over 3× its p50 (the tail rule, every load).
Then the named ratios (against the reference, login against argon2id).
"""

from __future__ import annotations

from typing import Any

from bench.charts import meets
from bench.wrk_run import TAIL_LIMIT

# load -> the unauthenticated load of the same configuration (its ratio's base).
BASES = {
    "jwks": "unauthenticated", "me_reused_redis": "unauthenticated",
    "me_fresh_redis": "unauthenticated", "me_reused_db": "unauthenticated",
    "me_fresh_db": "unauthenticated", "reference_me": "reference_unauthenticated",
    "me_reused_redis_pg": "unauthenticated_pg", "me_fresh_redis_pg": "unauthenticated_pg",
    "me_reused_db_pg": "unauthenticated_pg", "me_fresh_db_pg": "unauthenticated_pg",
    "proxy_me": "proxy_unauthenticated",
    "proxy_reference_me": "proxy_reference_unauthenticated",
    "refresh_redis": "unauthenticated", "refresh_db": "unauthenticated",
    "refresh_redis_pg": "unauthenticated_pg", "refresh_db_pg": "unauthenticated_pg",
}

# ratio name -> (op, bound). "<load>_vs_<base>" for the rows; the rest by name.
GOALS: dict[str, tuple[str, float]] = {
    "jwks_vs_unauthenticated": (">=", 0.95),
    "me_reused_redis_vs_unauthenticated": (">=", 0.75),
    "me_reused_redis_vs_reference": (">=", 2.0),
    "me_reused_db_vs_unauthenticated": (">=", 0.80),
    "me_fresh_db_vs_unauthenticated": (">=", 0.80),
    "me_reused_db_pg_vs_unauthenticated_pg": (">=", 0.80),
    "me_fresh_db_pg_vs_unauthenticated_pg": (">=", 0.80),
    "refresh_redis_vs_unauthenticated": (">=", 0.25),
    "refresh_db_vs_unauthenticated": (">=", 0.25),
    "proxy_me_vs_proxy_unauthenticated": (">=", 0.80),
    "proxy_me_vs_proxy_reference_me": (">=", 2.0),
    "login_p50_vs_argon2id": ("<=", 1.3),
}

# Named ratios beyond "load / its /healthz": ratio name -> (load, base), per round.
PAIRS = {
    "me_reused_redis_vs_reference": ("me_reused_redis", "reference_me"),
    "proxy_me_vs_proxy_reference_me": ("proxy_me", "proxy_reference_me"),
}


def ratio_name(load: str) -> str:
    return f"{load}_vs_{BASES[load]}"


def _goal_text(goal: tuple[str, float] | None) -> str:
    return "" if goal is None else f"{'≥' if goal[0] == '>=' else '≤'} {goal[1]:g}"


def verdict(ratio: float | None, goal: tuple[str, float] | None, tail: float) -> str:
    """pass, or what failed: the ratio's goal, the tail rule, or both."""
    failed = []
    if goal is not None and ratio is not None and not meets(ratio, goal):
        failed.append("ratio")
    if tail > TAIL_LIMIT:
        failed.append("tail")
    return "pass" if not failed else "FAIL " + "+".join(failed)


def rows(result: dict[str, Any]) -> list[list[str]]:
    """The table's rows, strings, in the result's load order."""
    table = []
    for load, run in result["loads"].items():
        name = ratio_name(load) if load in BASES else None
        ratio = result["ratios"].get(name) if name else (1.0 if "unauthenticated" in load else None)
        goal = GOALS.get(name) if name else None
        if load.startswith("login"):
            ratio_text = f"p50/argon2id {result['ratios'][load + '_p50_vs_argon2id']:.3f}"
            goal = GOALS["login_p50_vs_argon2id"] if load == "login" else None
            ratio = result["ratios"][load + "_p50_vs_argon2id"]
        else:
            ratio_text = "" if ratio is None else f"{ratio:.3f}"
        tail = run["p99_ms"] / run["p50_ms"] if run["p50_ms"] else 0.0
        table.append([load, f"{run['rate']:,.0f}/s", f"{run['p50_ms']:.2f}",
                      f"{run['p99_ms']:.2f}", f"{tail:.2f}", ratio_text, _goal_text(goal),
                      verdict(ratio, goal, tail)])
    return table


def format_table(result: dict[str, Any]) -> str:
    """The whole report: the loads' table, then the named ratios."""
    header = ["load", "rate", "p50 ms", "p99 ms", "p99/p50", "ratio to /healthz", "goal",
              "pass/fail"]
    table = [header, *rows(result)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) if i in (0, 5, 6, 7) else cell.rjust(widths[i])
                       for i, cell in enumerate(row)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    for name in PAIRS:
        if name in result["ratios"]:
            value, goal = result["ratios"][name], GOALS.get(name)
            lines.append(f"{name:<44} {value:>7.3f}  goal {_goal_text(goal):<7} "
                         f"{verdict(value, goal, 0.0)}")
    lines.append(f"{'argon2id verify (median)':<44} {result['argon2id_ms']:>7.2f} ms")
    tails = result.get("tail_rounds", {})
    flagged = [row[0] + (f" ({tails[row[0]][0]} of {tails[row[0]][1]} rounds)"
                         if row[0] in tails else "")
               for row in rows(result) if "tail" in row[7]]
    lines.append(f"tail rule (p99 <= {TAIL_LIMIT:g}x p50): "
                 + ("every load holds" if not flagged else "flagged: " + ", ".join(flagged)))
    return "\n".join(lines)
