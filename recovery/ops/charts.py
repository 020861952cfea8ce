"""Server-rendered SVG for the status page: no JavaScript, no CDN (the admin works offline)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join

SERIES = (("cancelled", "#c0392b"), ("replaced", "#2471a3"), ("skipped", "#95a5a6"))
# The drawing's own units; the SVG scales to its container through its viewBox.
WIDTH, HEIGHT = 960, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 30
FONT = 12


@dataclass(frozen=True)
class HourBucket:
    start: dt.datetime
    cancelled: int = 0
    replaced: int = 0
    skipped: int = 0


def hourly_buckets(
    runs: Iterable[tuple[dt.datetime, int, int, int]], *, now: dt.datetime, hours: int = 48
) -> list[HourBucket]:
    """(started_at, cancelled, replaced, skipped) rows summed per hour, oldest hour first."""
    top = now.replace(minute=0, second=0, microsecond=0)
    starts = [top - dt.timedelta(hours=h) for h in range(hours - 1, -1, -1)]
    sums = {start: [0, 0, 0] for start in starts}
    for started_at, cancelled, replaced, skipped in runs:
        hour = started_at.astimezone(now.tzinfo).replace(minute=0, second=0, microsecond=0)
        if hour in sums:
            for i, value in enumerate((cancelled, replaced, skipped)):
                sums[hour][i] += value
    return [HourBucket(start, *sums[start]) for start in starts]


def _ticks(peak: int) -> list[int]:
    """Round steps (1, 2, 5 × 10^n) from 0 to the first step at or above the peak; at most 6 ticks."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if -(-peak // step) <= 5:
                return list(range(0, -(-peak // step) * step + 1, step))
        magnitude *= 10


def hourly_svg(buckets: Sequence[HourBucket]) -> str:
    """Grouped bars, one group per hour, one bar per series; a y axis with ticks, x labels every 6 h."""
    ticks = _ticks(max([1] + [getattr(b, name) for b in buckets for name, _ in SERIES]))
    peak = ticks[-1]  # the axis' top: bars scale to it
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    base = TOP + plot_h
    group = plot_w / max(len(buckets), 1)
    bar = group / (len(SERIES) + 1)
    bars = []
    for i, bucket in enumerate(buckets):
        for j, (name, color) in enumerate(SERIES):
            value = getattr(bucket, name)
            height = plot_h * value / peak
            x = LEFT + i * group + j * bar
            title = f"{bucket.start:%Y-%m-%d %H}:00 UTC {name} {value}"
            bars.append((f"{x:.1f}", f"{base - height:.1f}", f"{bar:.1f}", f"{height:.1f}", color, title))
    grid = []
    for tick in ticks:
        y = f"{base - plot_h * tick / peak:.1f}"
        grid.append((LEFT, y, WIDTH - RIGHT, y, LEFT - 6, y, tick))
    labels = [
        (f"{LEFT + i * group:.1f}", HEIGHT - 10, f"{b.start:%d %H}h")
        for i, b in enumerate(buckets)
        if i % 6 == 0
    ]
    svg = format_html(
        '<svg id="recovery-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" '
        'preserveAspectRatio="xMidYMid meet" role="img" font-size="{}" '
        'aria-label="orders per hour, last 48 hours (UTC)">{}{}{}'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#888"/>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#888"/></svg>',
        WIDTH,
        HEIGHT,
        FONT,
        format_html_join(
            "",
            '<line class="y-grid" x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>'
            '<text class="y-tick" x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>',
            grid,
        ),
        format_html_join(
            "", '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>', bars
        ),
        format_html_join("", '<text class="x-tick" x="{}" y="{}">{}</text>', labels),
        LEFT,
        TOP,
        LEFT,
        base,
        LEFT,
        base,
        WIDTH - RIGHT,
        base,
    )
    return format_html("{}{}", svg, _legend())


def _legend() -> str:
    swatch = '<span style="display:inline-block;width:10px;height:10px;background:{}"></span> {}'
    return format_html(
        '<p class="chart-legend">{} · orders per hour (UTC), y axis: orders</p>',
        format_html_join(" ", swatch, [(c, n) for n, c in SERIES]),
    )
