"""Server-rendered SVG for the status page: no JavaScript, no CDN (the admin works offline)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join

SERIES = (("cancelled", "#c0392b"), ("replaced", "#2471a3"), ("skipped", "#95a5a6"))
WIDTH, HEIGHT, MARGIN = 960, 220, 30


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


def hourly_svg(buckets: Sequence[HourBucket]) -> str:
    """Grouped bars, one group per hour, one bar per series; labels every 6 hours."""
    peak = max([1] + [getattr(b, name) for b in buckets for name, _ in SERIES])
    group = (WIDTH - 2 * MARGIN) / max(len(buckets), 1)
    bar = group / (len(SERIES) + 1)
    plot = HEIGHT - 2 * MARGIN
    bars = []
    for i, bucket in enumerate(buckets):
        for j, (name, color) in enumerate(SERIES):
            value = getattr(bucket, name)
            height = plot * value / peak
            x = MARGIN + i * group + j * bar
            title = f"{bucket.start:%Y-%m-%d %H}:00 UTC {name} {value}"
            bars.append(
                (f"{x:.1f}", f"{HEIGHT - MARGIN - height:.1f}", f"{bar:.1f}", f"{height:.1f}", color, title)
            )
    labels = [
        (f"{MARGIN + i * group:.1f}", HEIGHT - 8, f"{b.start:%d %H}h")
        for i, b in enumerate(buckets)
        if i % 6 == 0
    ]
    svg = format_html(
        '<svg id="recovery-chart" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" '
        'aria-label="orders per hour, last 48 hours (UTC)">'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#888"/>{}{}'
        '<text x="{}" y="{}" font-size="10">max {}</text></svg>',
        WIDTH,
        HEIGHT,
        MARGIN,
        HEIGHT - MARGIN,
        WIDTH - MARGIN,
        HEIGHT - MARGIN,
        format_html_join(
            "", '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>', bars
        ),
        format_html_join("", '<text x="{}" y="{}" font-size="10">{}</text>', labels),
        WIDTH - MARGIN - 60,
        MARGIN - 8,
        peak,
    )
    return format_html("{}{}", svg, _legend())


def _legend() -> str:
    swatch = '<span style="display:inline-block;width:10px;height:10px;background:{}"></span> {}'
    return format_html(
        '<p class="chart-legend">{}</p>', format_html_join(" ", swatch, [(c, n) for n, c in SERIES])
    )
