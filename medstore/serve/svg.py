"""Charts as inline SVG drawn on the server (no JavaScript, no CDN): horizontal bars with
segments, stacked columns over time, and lines. Numbers are written for people (14k, 1.2M,
$0.0123), ticks fall on round values, and long labels wrap instead of being cut."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
ACCEPTED = "#16a34a"
FAILURES = ("#dc2626", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#4b5563", "#2563eb")


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    dashed: bool = False


@dataclass
class Bar:
    """One horizontal bar: its label, its segments (name, value) and a note written after it."""

    label: str
    segments: list[tuple[str, float]]
    note: str = ""
    colours: list[str] = field(default_factory=list)


def human(value: float) -> str:
    """14020 -> 14k, 1402000 -> 1.4M, 0.25 -> 0.25, 3 -> 3."""
    size = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            scaled = value / limit
            return f"{scaled:.1f}".rstrip("0").rstrip(".") + suffix
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.3g}"


def count(value: float, unit: str) -> str:
    """3 tasks, 1 task: ``unit`` is the plural, its last s dropped for one."""
    return f"{human(value)} {unit[:-1] if value == 1 and unit.endswith('s') else unit}"


def money(value: float | None) -> str:
    if value is None:
        return "cost unknown"
    return f"${value:,.4f}" if value < 100 else f"${value:,.0f}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if high <= low:
        high = low + 1
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = []
    tick = start
    while tick < high + step * 0.5:
        ticks.append(round(tick, 10))
        tick += step
    return ticks


def svg_open(width: int, height: int, label: str) -> str:
    return (
        f'<svg class="medstore-chart-svg" xmlns="http://www.w3.org/2000/svg" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="{escape(label)}" font-family="sans-serif" font-size="12">'
    )


def wrapped(label: str, x: float, y: float, width_chars: int, anchor: str = "end") -> str:
    """A label on up to two lines (the rest after an ellipsis), with the whole text as title."""
    lines = textwrap.wrap(label, width_chars) or [""]
    if len(lines) > 2:
        lines = [lines[0], textwrap.shorten(" ".join(lines[1:]), width_chars, placeholder="…")]
    spans = "".join(
        f'<tspan x="{x:.1f}" dy="{0 if i == 0 else 13}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    top = y - 6 * (len(lines) - 1)
    return (
        f'<text x="{x:.1f}" y="{top:.1f}" text-anchor="{anchor}">{spans}'
        f"<title>{escape(label)}</title></text>"
    )


def bar_chart(items: list[tuple[str, float]], *, unit: str, width: int = 900) -> str:
    """One bar per label, longest first as given, each labelled with its value."""
    bars = [
        Bar(label, [(unit, value)], count(value, unit), [PALETTE[i % len(PALETTE)]])
        for i, (label, value) in enumerate(items)
    ]
    return hbar_chart(bars, width=width)


def hbar_chart(
    bars: list[Bar],
    *,
    width: int = 900,
    legend: list[str] | None = None,
    legend_colours: list[str] | None = None,
) -> str:
    """Horizontal bars made of segments (e.g. input then output tokens), a note after each."""
    row_height, label_width, note_width = 34, 300, 320
    bar_space = width - label_width - note_width
    top = max((sum(v for _, v in bar.segments) for bar in bars), default=0) or 1
    legend_height = 20 if legend else 0
    height = row_height * len(bars) + 8 + legend_height
    parts = [svg_open(width, height, "bar chart")]
    for index, bar in enumerate(bars):
        y = 4 + index * row_height
        parts.append(wrapped(bar.label, label_width - 8, y + 20, 44))
        x = float(label_width)
        for number, (name, value) in enumerate(bar.segments):
            length = max(1.0, bar_space * value / top) if value else 0.0
            colour = bar.colours[number] if number < len(bar.colours) else PALETTE[number]
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 7}" width="{length:.1f}" height="{row_height - 14}"'
                f' fill="{colour}"><title>{escape(bar.label)}: {human(value)} {escape(name)}'
                "</title></rect>"
            )
            x += length
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 21}">{escape(bar.note)}</text>')
    if legend:
        parts.append(legend_row(legend, label_width, height - 6, legend_colours))
    parts.append("</svg>")
    return "".join(parts)


def legend_row(names: list[str], x: float, y: float, colours: list[str] | None = None) -> str:
    parts = []
    for index, name in enumerate(names):
        colour = (colours or PALETTE)[index % len(colours or PALETTE)]
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 16:.1f}" y="{y:.1f}">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)
    return "".join(parts)


def stacked_columns(
    buckets: list[str],
    series: list[tuple[str, list[float], str]],
    *,
    y_label: str,
    width: int = 760,
    height: int = 280,
) -> str:
    """One column per time bucket, stacked by series (name, a value per bucket, colour), with a
    legend below; each segment's tooltip names its bucket, series and value."""
    left, right, top, bottom = 56, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[i] for _, values, _ in series) for i in range(len(buckets))]
    ticks = nice_ticks(0, max(totals, default=1) or 1)
    y_max = ticks[-1] or 1
    slot = plot_w / max(len(buckets), 1)
    legend_lines = 1 + len(series) // 4
    parts = [svg_open(width, height + 18 * legend_lines, f"{y_label} over time")]
    parts.append(axes(left, top, plot_w, plot_h, ticks, y_label))
    for index, bucket in enumerate(buckets):
        x = left + slot * index + slot * 0.15
        base = top + plot_h
        for name, values, colour in series:
            value = values[index]
            if not value:
                continue
            size = plot_h * value / y_max
            base -= size
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{slot * 0.7:.1f}" height="{size:.1f}"'
                f' fill="{colour}"><title>{escape(bucket)}: {human(value)} {escape(name)}'
                "</title></rect>"
            )
    labels = {0, len(buckets) - 1, len(buckets) // 2}
    for index in sorted(labels):
        if 0 <= index < len(buckets):
            x = left + slot * index + slot / 2
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                f"{escape(buckets[index])}</text>"
            )
    for line in range(legend_lines):
        chunk = series[line * 4 : line * 4 + 4]
        parts.append(
            legend_row(
                [name for name, _, _ in chunk],
                left,
                height + 18 * line + 4,
                [colour for _, _, colour in chunk],
            )
        )
    parts.append("</svg>")
    return "".join(parts)


def axes(
    left: float, top: float, plot_w: float, plot_h: float, ticks: list[float], y_label: str
) -> str:
    """The y axis from the first tick to the last, with grid lines, the x axis, the y label."""
    low, span = ticks[0], (ticks[-1] - ticks[0]) or 1
    parts = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"'
        ' stroke="#888"/>'
    ]
    for tick in ticks:
        y = top + plot_h * (1 - (tick - low) / span)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{human(tick)}</text>'
        )
    middle = top + plot_h / 2
    parts.append(
        f'<text x="12" y="{middle}" transform="rotate(-90 12 {middle})" text-anchor="middle">'
        f"{escape(y_label)}</text>"
    )
    return "".join(parts)


def line_chart(
    series: list[Series], *, x_label: str, y_label: str, width: int = 760, height: int = 300
) -> str:
    """Lines over shared linear axes with round ticks, and a legend below."""
    left, right, top, bottom = 64, 16, 12, 44
    xs = [x for one in series for x, _ in one.points]
    ys = [y for one in series for _, y in one.points]
    x_ticks = nice_ticks(min(xs, default=0), max(xs, default=1))
    y_ticks = nice_ticks(min(min(ys, default=0), 0), max(ys, default=1))
    x_min, x_span = x_ticks[0], (x_ticks[-1] - x_ticks[0]) or 1
    y_min, y_span = y_ticks[0], (y_ticks[-1] - y_ticks[0]) or 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def at(x: float, y: float) -> str:
        return (
            f"{left + plot_w * (x - x_min) / x_span:.1f},"
            f"{top + plot_h * (1 - (y - y_min) / y_span):.1f}"
        )

    parts = [svg_open(width, height + 18 * len(series), f"{y_label} by {x_label}")]
    parts.append(axes(left, top, plot_w, plot_h, y_ticks, y_label))
    for tick in x_ticks:
        x = left + plot_w * (tick - x_min) / x_span
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{human(tick)}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{top + plot_h + 34}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if one.dashed else ""
        points = " ".join(at(x, y) for x, y in one.points)
        parts.append(
            f'<polyline class="series" points="{points}" fill="none" stroke="{colour}"'
            f' stroke-width="2"{dash}><title>{escape(one.name)}</title></polyline>'
        )
        legend_y = height + 18 * index + 4
        parts.append(
            f'<line x1="{left}" y1="{legend_y}" x2="{left + 24}" y2="{legend_y}"'
            f' stroke="{colour}" stroke-width="3"{dash}/>'
            f'<text x="{left + 30}" y="{legend_y + 4}">{escape(one.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
