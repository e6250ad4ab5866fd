"""An hourly trend as an inline SVG, rendered on the server: no JavaScript, nothing fetched.

Bars for one series (calls, or DB time) and a line for another (p95), one slot per hour, hours
without data left empty. Every text that reaches the markup goes through ``format_html``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 160
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 48, 22, 10


@dataclass(frozen=True)
class Point:
    hour: dt.datetime
    bar: float  # e.g. calls in that hour
    line: float | None  # e.g. p95 in ms


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def trend_svg(
    points: Sequence[Point], *, start: dt.datetime, hours: int, bar_label: str, line_label: str
) -> SafeString:
    """``hours`` hourly slots from ``start``; an empty chart says there is no data."""
    slot = (WIDTH - PAD_LEFT) / max(hours, 1)
    plot_height = HEIGHT - PAD_BOTTOM - PAD_TOP
    by_slot = {int((p.hour - start).total_seconds() // 3600): p for p in points}
    by_slot = {index: p for index, p in by_slot.items() if 0 <= index < hours}
    top_bar = max((p.bar for p in by_slot.values()), default=0.0) or 1.0
    lines = [p.line for p in by_slot.values() if p.line is not None]
    top_line = max(lines, default=0.0) or 1.0

    def y(value: float, top: float) -> float:
        return PAD_TOP + plot_height * (1 - value / top)

    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" class="bar">'
        "<title>{} UTC: {} {}</title></rect>",
        (
            (
                f"{PAD_LEFT + index * slot:.1f}",
                f"{y(p.bar, top_bar):.1f}",
                f"{max(slot - 1, 1):.1f}",
                f"{plot_height * p.bar / top_bar:.1f}",
                f"{p.hour:%Y-%m-%d %H:00}",
                _number(p.bar),
                bar_label,
            )
            for index, p in sorted(by_slot.items())
        ),
    )
    line_points = [(i, p.line) for i, p in sorted(by_slot.items()) if p.line is not None]
    path = " ".join(
        f"{'M' if n == 0 else 'L'}{PAD_LEFT + (index + 0.5) * slot:.1f},{y(value, top_line):.1f}"
        for n, (index, value) in enumerate(line_points)
    )
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="2" class="dot"/>',
        (
            (f"{PAD_LEFT + (index + 0.5) * slot:.1f}", f"{y(value, top_line):.1f}")
            for index, value in line_points
        ),
    )
    line = format_html('<path d="{}" class="line" fill="none"/>{}', path, dots) if path else ""
    empty = (
        format_html(
            '<text x="{}" y="{}" class="empty">No data in these {} hours</text>',
            WIDTH // 2,
            HEIGHT // 2,
            hours,
        )
        if not by_slot
        else ""
    )
    axis = format_html(
        '<text x="2" y="{}" class="axis">{} {}</text>'
        '<text x="2" y="{}" class="axis line-label">{} {}</text>'
        '<text x="{}" y="{}" class="axis">{}</text>'
        '<text x="{}" y="{}" class="axis" text-anchor="end">{} UTC</text>',
        PAD_TOP + 8, _number(top_bar), bar_label,
        PAD_TOP + 22, _number(top_line), line_label,
        PAD_LEFT, HEIGHT - 6, f"{start:%m-%d %H:00}",
        WIDTH, HEIGHT - 6, f"{start + dt.timedelta(hours=hours):%m-%d %H:00}",
    )  # fmt: skip
    return format_html(
        '<svg class="dbperf-trend" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-label="{}">{}{}{}{}</svg>',
        WIDTH,
        HEIGHT,
        f"{bar_label} and {line_label} per hour",
        bars,
        line,
        axis,
        empty or mark_safe(""),
    )
