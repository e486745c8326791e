"""Small inline-SVG charts (bar and line) with axes, ticks, units, a legend and accessible
``<title>``/``<desc>``: enough for a self-contained report page, no JavaScript.

Every text that reaches the markup goes through ``html.escape``; callers pass plain text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', Arial, sans-serif"
AXIS_COLOR = "#374151"
GRID_COLOR = "#e5e7eb"
TEXT_COLOR = "#111827"
MUTED_COLOR = "#6b7280"

ValueFormat = Callable[[float], str]


@dataclass(frozen=True)
class LegendEntry:
    label: str
    color: str
    shape: str = "box"
    """``box``, ``line`` or ``triangle``."""


@dataclass(frozen=True)
class ChartFrame:
    """Geometry shared by both chart kinds."""

    width: int = 880
    height: int = 280
    left: int = 72
    right: int = 20
    top: int = 56
    bottom: int = 48

    @property
    def plot_width(self) -> float:
        return float(self.width - self.left - self.right)

    @property
    def plot_height(self) -> float:
        return float(self.height - self.top - self.bottom)

    @property
    def baseline(self) -> float:
        return float(self.height - self.bottom)


@dataclass(frozen=True)
class BarMarks:
    """Per-bar emphasis: ``flagged`` bars take ``flag_color``; ``marked`` bars get a
    triangle above them in ``marker_color``."""

    flagged: Sequence[bool] = ()
    flag_color: str = "#dc2626"
    flag_label: str = ""
    marked: Sequence[bool] = ()
    marker_color: str = "#dc2626"
    marker_label: str = ""
    extra_legend: tuple[LegendEntry, ...] = field(default=())


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Tick values from 0 to a round top at or above ``maximum`` (steps of 1, 2 or 5 x 10^k)."""
    if not math.isfinite(maximum) or maximum <= 0:
        maximum = 1.0
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    top = math.ceil(maximum / step - 1e-9) * step
    return [round(i * step, 12) for i in range(round(top / step) + 1)]


def tick_format(ticks: Sequence[float]) -> ValueFormat:
    """A formatter with just enough decimals for the tick step."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return lambda value: f"{value:,.{decimals}f}"


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _open(chart_id: str, frame: ChartFrame, title: str, description: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}"'
        f' viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}"'
        f' height="{frame.height}" role="img"'
        f' aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc"'
        f' font-family="{escape(FONT)}" font-size="12" fill="{TEXT_COLOR}">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
        f'<rect x="0" y="0" width="{frame.width}" height="{frame.height}" fill="#ffffff"/>',
        f'<text x="{frame.left}" y="20" font-size="15" font-weight="600">{escape(title)}</text>',
    ]


def _legend(frame: ChartFrame, entries: Sequence[LegendEntry]) -> list[str]:
    parts = []
    x = float(frame.left)
    y = 38.0
    for entry in entries:
        color = escape(entry.color)
        if entry.shape == "line":
            parts.append(
                f'<line x1="{_num(x)}" y1="{_num(y - 4)}" x2="{_num(x + 16)}" y2="{_num(y - 4)}"'
                f' stroke="{color}" stroke-width="3"/>'
            )
        elif entry.shape == "triangle":
            parts.append(f'<path d="M{_num(x + 8)} {_num(y)} l-6 -10 h12 z" fill="{color}"/>')
        else:
            parts.append(
                f'<rect x="{_num(x)}" y="{_num(y - 10)}" width="14" height="12" fill="{color}"/>'
            )
        parts.append(f'<text x="{_num(x + 20)}" y="{_num(y)}">{escape(entry.label)}</text>')
        x += 20 + 7.0 * len(entry.label) + 22
    return parts


def _axes(
    frame: ChartFrame,
    ticks: Sequence[float],
    unit: str,
    labels: Sequence[str],
    slot: float,
    x_title: str,
) -> list[str]:
    """Grid lines with y tick labels, the unit, both axis lines and thinned x labels."""
    parts = []
    top = ticks[-1]
    fmt = tick_format(ticks)
    for tick in ticks:
        y = frame.baseline - tick / top * frame.plot_height
        parts.append(
            f'<line x1="{frame.left}" y1="{_num(y)}" x2="{frame.width - frame.right}"'
            f' y2="{_num(y)}" stroke="{GRID_COLOR}" stroke-width="1"/>'
            f'<text x="{frame.left - 6}" y="{_num(y + 4)}" text-anchor="end"'
            f' fill="{MUTED_COLOR}">{escape(fmt(tick))}</text>'
        )
    middle = frame.top + frame.plot_height / 2
    parts.append(
        f'<text x="16" y="{_num(middle)}" text-anchor="middle" fill="{MUTED_COLOR}"'
        f' transform="rotate(-90 16 {_num(middle)})">{escape(unit)}</text>'
    )
    parts.append(
        f'<line x1="{frame.left}" y1="{frame.top}" x2="{frame.left}" y2="{_num(frame.baseline)}"'
        f' stroke="{AXIS_COLOR}" stroke-width="1"/>'
        f'<line x1="{frame.left}" y1="{_num(frame.baseline)}" x2="{frame.width - frame.right}"'
        f' y2="{_num(frame.baseline)}" stroke="{AXIS_COLOR}" stroke-width="1"/>'
    )
    longest = max((len(label) for label in labels), default=1)
    every = max(1, math.ceil((7.0 * longest + 10) / slot)) if slot > 0 else 1
    for index, label in enumerate(labels):
        if index % every:
            continue
        x = frame.left + (index + 0.5) * slot
        parts.append(
            f'<line x1="{_num(x)}" y1="{_num(frame.baseline)}" x2="{_num(x)}"'
            f' y2="{_num(frame.baseline + 4)}" stroke="{AXIS_COLOR}"/>'
            f'<text x="{_num(x)}" y="{_num(frame.baseline + 18)}" text-anchor="middle"'
            f' fill="{MUTED_COLOR}">{escape(label)}</text>'
        )
    parts.append(
        f'<text x="{_num(frame.left + frame.plot_width / 2)}" y="{frame.height - 6}"'
        f' text-anchor="middle" fill="{MUTED_COLOR}">{escape(x_title)}</text>'
    )
    return parts


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    unit: str,
    x_title: str,
    color: str,
    series_label: str,
    value_format: ValueFormat,
    marks: BarMarks | None = None,
    frame: ChartFrame | None = None,
) -> str:
    """A bar per label; a None value draws no bar. Each bar carries a ``<title>`` tooltip."""
    frame = frame or ChartFrame()
    marks = marks or BarMarks()
    present = [v for v in values if v is not None]
    ticks = nice_ticks(max(present, default=0.0))
    top = ticks[-1]
    slot = frame.plot_width / max(1, len(labels))
    legend = [LegendEntry(series_label, color)]
    if any(marks.flagged):
        legend.append(LegendEntry(marks.flag_label, marks.flag_color))
    if any(marks.marked):
        legend.append(LegendEntry(marks.marker_label, marks.marker_color, "triangle"))
    legend.extend(marks.extra_legend)
    parts = _open(chart_id, frame, title, description)
    parts += _legend(frame, legend)
    parts += _axes(frame, ticks, unit, labels, slot, x_title)
    bar_width = max(1.0, slot * 0.72)
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = frame.left + index * slot + (slot - bar_width) / 2
        flagged = index < len(marks.flagged) and marks.flagged[index]
        text = (
            f"{label}: {value_format(value)} {unit}" if value is not None else f"{label}: no data"
        )
        height = 0.0
        if value is not None:
            height = max(0.0, value) / top * frame.plot_height
            fill = marks.flag_color if flagged else color
            parts.append(
                f'<rect x="{_num(x)}" y="{_num(frame.baseline - height)}"'
                f' width="{_num(bar_width)}" height="{_num(height)}" fill="{escape(fill)}">'
                f"<title>{escape(text + (' (' + marks.flag_label + ')' if flagged else ''))}"
                "</title></rect>"
            )
        if index < len(marks.marked) and marks.marked[index]:
            tip_x = x + bar_width / 2
            tip_y = frame.baseline - height - 3
            parts.append(
                f'<path d="M{_num(tip_x)} {_num(tip_y)} l-5 -9 h10 z"'
                f' fill="{escape(marks.marker_color)}"><title>'
                f"{escape(label + ': ' + marks.marker_label)}</title></path>"
            )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    unit: str,
    x_title: str,
    line_color: str,
    area_color: str,
    series_label: str,
    value_format: ValueFormat,
    frame: ChartFrame | None = None,
) -> str:
    """A line over the labels with a filled area below it; None values break the line."""
    frame = frame or ChartFrame()
    present = [v for v in values if v is not None]
    ticks = nice_ticks(max(present, default=0.0))
    top = ticks[-1]
    slot = frame.plot_width / max(1, len(labels))
    parts = _open(chart_id, frame, title, description)
    parts += _legend(frame, [LegendEntry(series_label, line_color, "line")])
    parts += _axes(frame, ticks, unit, labels, slot, x_title)

    def point(index: int, value: float) -> tuple[float, float]:
        x = frame.left + (index + 0.5) * slot
        return x, frame.baseline - max(0.0, value) / top * frame.plot_height

    segments: list[list[tuple[float, float]]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append(point(index, value))
    for segment in segments:
        if not segment:
            continue
        coords = " ".join(f"{_num(x)},{_num(y)}" for x, y in segment)
        first_x, last_x = segment[0][0], segment[-1][0]
        base = _num(frame.baseline)
        parts.append(
            f'<polygon points="{_num(first_x)},{base} {coords} {_num(last_x)},{base}"'
            f' fill="{escape(area_color)}"/>'
            f'<polyline points="{coords}" fill="none" stroke="{escape(line_color)}"'
            ' stroke-width="2.5" stroke-linejoin="round"/>'
        )
    for index, value in enumerate(values):
        if value is None:
            continue
        x, y = point(index, value)
        parts.append(
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3" fill="{escape(line_color)}">'
            f"<title>{escape(f'{labels[index]}: {value_format(value)} {unit}')}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
