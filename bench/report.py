"""The summary: one row per metric, ours beside its baseline from the same run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

COLUMNS = ("metric", "ours", "baseline", "ratio", "target", "result")


@dataclass(frozen=True)
class Row:
    metric: str
    ours: str
    baseline: str
    ratio: str
    target: str
    passed: bool | None  # None: reported, no target

    @property
    def result(self) -> str:
        return {True: "PASS", False: "FAIL", None: "info"}[self.passed]


def times_text(*, ours: float, baseline: float, lower_is_better: bool = True) -> str:
    """'12.3x faster' / '1.8x slower': always ours against the baseline, never a bare figure."""
    if ours <= 0 or baseline <= 0:
        return "n/a"
    better = baseline / ours if lower_is_better else ours / baseline
    return f"{better:.1f}x better" if better >= 1 else f"{1 / better:.1f}x worse"


def speed_text(*, ours_seconds: float, baseline_seconds: float) -> str:
    if ours_seconds <= 0 or baseline_seconds <= 0:
        return "n/a"
    factor = baseline_seconds / ours_seconds
    return f"{factor:.1f}x faster" if factor >= 1 else f"{1 / factor:.2f}x slower"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def table_text(rows: list[Row]) -> str:
    cells = [COLUMNS] + [(r.metric, r.ours, r.baseline, r.ratio, r.target, r.result) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def report_write(path: Path, *, rows: list[Row], facts: dict[str, Any], details: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        **facts,
        "summary": [{**asdict(row), "result": row.result} for row in rows],
        "all_targets_met": all(row.passed is not False for row in rows),
        "details": details,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
