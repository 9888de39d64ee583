"""The bench's pictures, hand-written SVG (no plotting library): ratios and latencies.

- ``ratios.svg``: one small panel per ratio, its value in each round (a dot per
  round, joined) against its goal (a dashed line; green when the median of the
  rounds meets it, red when not);
- ``latency.svg``: one row per HTTP load, its p50, p75, p90 and p99 on a
  logarithmic millisecond axis, with the tail limit (3× p50) marked.

Presentation attributes only (the style of app/core/migration_chart.py), so a
page with a strict CSP can inline them. ``write`` takes the result dict that
bench/http_load.py saves (bench/results/http.json) and writes both files.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

PASS, FAIL, INK, GRID, SERIES = "#1e8449", "#c0392b", "#333333", "#dddddd", "#1f618d"
PERCENTILE_COLOURS = {"p50_ms": "#1f618d", "p75_ms": "#5dade2", "p90_ms": "#d68910",
                      "p99_ms": "#c0392b"}
FONT = 'font-family="sans-serif" font-size="11"'


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return "\n".join([
        (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" role="img">'),
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        *body, "</svg>", ""])


def _text(x: float, y: float, content: str, anchor: str = "start", fill: str = INK,
          bold: bool = False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" {FONT}{weight} text-anchor="{anchor}" '
            f'fill="{fill}">{escape(content)}</text>')


def meets(value: float, goal: tuple[str, float]) -> bool:
    """Whether ``value`` meets a goal such as (">=", 0.8) or ("<=", 3.0)."""
    op, bound = goal
    return value >= bound if op == ">=" else value <= bound


def ratio_chart(rounds: dict[str, list[float]], goals: dict[str, tuple[str, float]]) -> str:
    """Per-round ratios, one panel each, against their goal lines."""
    names = [name for name in rounds if rounds[name]]
    panel_w, panel_h, columns = 340, 120, 2
    rows = max(1, math.ceil(len(names) / columns))
    width, height = panel_w * columns + 20, panel_h * rows + 40
    body = [_text(10, 20, "Per-round ratios against their goals (dashed); median in the title",
                  bold=True)]
    for index, name in enumerate(names):
        values = rounds[name]
        left = 10 + (index % columns) * panel_w + 40
        top = 40 + (index // columns) * panel_h + 18
        right, bottom = left + panel_w - 60, top + panel_h - 48
        goal = goals.get(name)
        bounds = values + ([goal[1]] if goal else [])
        low, high = min(bounds), max(bounds)
        pad = (high - low) * 0.15 or max(abs(high) * 0.1, 0.05)
        low, high = low - pad, high + pad

        def y(value: float, low: float = low, high: float = high, top: int = top,
              bottom: int = bottom) -> float:
            return bottom - (bottom - top) * (value - low) / (high - low)

        def x(i: int, n: int = len(values), left: int = left, right: int = right) -> float:
            return left + (right - left) * (i / (n - 1) if n > 1 else 0.5)

        median = statistics.median(values)
        colour = INK if goal is None else PASS if meets(median, goal) else FAIL
        label = f"{name}: {median:.3g}" + (f" (goal {goal[0]} {goal[1]:g})" if goal else "")
        body.append(_text(left - 30, top - 6, label, fill=colour))
        body.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
                    f'fill="none" stroke="{GRID}"/>')
        for tick in (low + pad, high - pad):
            body.append(_text(left - 4, y(tick) + 4, f"{tick:.3g}", anchor="end"))
        if goal is not None:
            body.append(f'<line x1="{left}" y1="{y(goal[1]):.1f}" x2="{right}" '
                        f'y2="{y(goal[1]):.1f}" stroke="{colour}" stroke-dasharray="5,3"/>')
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        body.append(f'<polyline points="{points}" fill="none" stroke="{SERIES}"/>')
        body += [f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{SERIES}"/>'
                 for i, v in enumerate(values)]
        body.append(_text((left + right) / 2, bottom + 14, f"round 1 to {len(values)}",
                          anchor="middle"))
    return _svg(width, height, body, "Per-round ratios")


def latency_chart(loads: dict[str, dict[str, float]], tail_limit: float = 3.0) -> str:
    """p50/p75/p90/p99 per load on a log axis; the tail limit (``tail_limit`` × p50) marked."""
    names = list(loads)
    label_w, plot_w, row_h = 230, 460, 18
    width, top = label_w + plot_w + 30, 44
    height = top + row_h * len(names) + 40
    values = [v for load in loads.values() for k, v in load.items() if k in PERCENTILE_COLOURS]
    values += [load["p50_ms"] * tail_limit for load in loads.values()]
    low = 10 ** math.floor(math.log10(max(min(values), 1e-3)))
    high = 10 ** math.ceil(math.log10(max(values)))
    high = high * 10 if high <= low else high
    left, right = label_w, label_w + plot_w

    def x(ms: float) -> float:
        return left + (right - left) * (math.log10(max(ms, low)) - math.log10(low)) / (
            math.log10(high) - math.log10(low))

    body = [_text(10, 18, f"Latency per load, ms (log scale); | marks {tail_limit:g}× p50",
                  bold=True)]
    legend_x = 10.0
    for key, colour in PERCENTILE_COLOURS.items():
        body.append(f'<circle cx="{legend_x + 4:.1f}" cy="31" r="4" fill="{colour}"/>')
        body.append(_text(legend_x + 12, 35, key.removesuffix("_ms")))
        legend_x += 50
    decade = low
    bottom = top + row_h * len(names)
    while decade <= high * 1.0001:
        body.append(f'<line x1="{x(decade):.1f}" y1="{top - 4}" x2="{x(decade):.1f}" '
                    f'y2="{bottom}" stroke="{GRID}"/>')
        body.append(_text(x(decade), bottom + 14, f"{decade:g}", anchor="middle"))
        decade *= 10
    for row, name in enumerate(names):
        load = loads[name]
        cy = top + row_h * row + row_h / 2
        flagged = load["p99_ms"] > tail_limit * load["p50_ms"]
        body.append(_text(left - 8, cy + 4, name + (" (tail!)" if flagged else ""),
                          anchor="end", fill=FAIL if flagged else INK))
        body.append(f'<line x1="{x(load["p50_ms"]):.1f}" y1="{cy:.1f}" '
                    f'x2="{x(load["p99_ms"]):.1f}" y2="{cy:.1f}" '
                    f'stroke="{GRID}" stroke-width="3"/>')
        limit = x(load["p50_ms"] * tail_limit)
        body.append(f'<line x1="{limit:.1f}" y1="{cy - 6:.1f}" x2="{limit:.1f}" '
                    f'y2="{cy + 6:.1f}" stroke="{INK}"/>')
        for key, colour in PERCENTILE_COLOURS.items():
            if key in load:
                body.append(f'<circle cx="{x(load[key]):.1f}" cy="{cy:.1f}" r="4" '
                            f'fill="{colour}"/>')
    return _svg(width, height, body, "Latency percentiles per load")


def write(result: dict[str, Any], directory: Path) -> list[Path]:
    """Both charts of one bench result into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    goals = {name: (op, float(bound)) for name, (op, bound) in result.get("goals", {}).items()}
    ratios = directory / "ratios.svg"
    ratios.write_text(ratio_chart(result["rounds"], goals))
    latency = directory / "latency.svg"
    latency.write_text(latency_chart(result["loads"]))
    return [ratios, latency]
