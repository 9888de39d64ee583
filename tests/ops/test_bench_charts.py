"""The bench's chart writer and table (bench/charts.py, bench/report.py) on a sample result."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from bench import charts, report

SVG = "{http://www.w3.org/2000/svg}"


def _load(rate: float, p50: float, p99: float) -> dict[str, float]:
    return {"rate": rate, "requests": rate * 2, "p50_ms": p50, "p75_ms": p50 * 1.2,
            "p90_ms": p50 * 1.5, "p99_ms": p99}


SAMPLE: dict[str, Any] = {
    "loads": {
        "unauthenticated": _load(2700, 1.4, 3.0),
        "me_reused_db": _load(2300, 1.7, 4.1),
        "me_fresh_redis": _load(1300, 1.5, 86.0),  # a tail outlier: p99 > 3x p50
        "login": _load(38, 26.0, 40.0),
    },
    "rounds": {
        "me_reused_db_vs_unauthenticated": [0.84, 0.86, 0.83],
        "me_fresh_redis_vs_unauthenticated": [0.47, 0.48, 0.5],
        "login_p50_vs_argon2id": [1.31, 1.2, 1.25],
    },
    "ratios": {"me_reused_db_vs_unauthenticated": 0.84,
               "me_fresh_redis_vs_unauthenticated": 0.48, "login_p50_vs_argon2id": 1.25},
    "goals": {name: list(goal) for name, goal in report.GOALS.items()},
    "argon2id_ms": 20.8,
}


def test_charts_are_valid_svg_with_a_mark_per_value(tmp_path: Path) -> None:
    written = charts.write(SAMPLE, tmp_path / "results")
    assert [path.name for path in written] == ["ratios.svg", "latency.svg"]
    ratios = ET.parse(written[0]).getroot()
    assert ratios.tag == SVG + "svg"
    # One dot per round of each ratio, and a dashed goal line for each ratio with a goal.
    assert len(ratios.findall(f"{SVG}circle")) == 9
    goal_lines = [line for line in ratios.findall(f"{SVG}line") if line.get("stroke-dasharray")]
    assert len(goal_lines) == 2
    # The goal met (0.84 >= 0.80) is drawn green, the title says the median.
    texts = [text.text or "" for text in ratios.iter(f"{SVG}text")]
    assert "me_reused_db_vs_unauthenticated: 0.84 (goal >= 0.8)" in texts
    assert goal_lines[0].get("stroke") == charts.PASS

    latency = ET.parse(written[1]).getroot()
    assert latency.tag == SVG + "svg"
    labels = [text.text or "" for text in latency.iter(f"{SVG}text")]
    assert "me_fresh_redis (tail!)" in labels and "me_reused_db" in labels
    # Four percentile dots per load, plus the legend's four.
    assert len(latency.findall(f"{SVG}circle")) == 4 * len(SAMPLE["loads"]) + 4


def test_table_flags_a_tail_and_a_missed_goal() -> None:
    rows = {row[0]: row for row in report.rows(SAMPLE)}
    assert rows["me_reused_db"][5:] == ["0.840", "≥ 0.8", "pass"]
    assert rows["me_fresh_redis"][4] == "57.33" and rows["me_fresh_redis"][7] == "FAIL tail"
    assert rows["login"][7] == "pass"
    table = report.format_table(SAMPLE)
    assert "flagged: me_fresh_redis" in table
