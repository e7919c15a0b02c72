"""Charts drawn on the server as inline SVG: no script, no third-party host, no inline style.

Colours and strokes come from classes in ``site.css`` (``chart``, ``series-1..3``, ``axis``,
``gridline``, ``line``); geometry is SVG attributes, which the Content-Security-Policy allows.
Each chart carries a title and a description for screen readers, every point or bar a
``<title>`` tooltip, and the page shows the same figures in a table beside it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 28, 44
_ids = itertools.count(1)

Format = Callable[[int], str]


@dataclasses.dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[int]
    tone: int | None = None  # which of the stylesheet's series-1..3 colours; by order if None


def _tone(item: Series, number: int) -> int:
    return item.tone or number


def nice_step(span: int, ticks: int = 4) -> int:
    """A round step (1, 2 or 5 times a power of ten) giving about ``ticks`` gridlines."""
    raw = max(1, -(-span // ticks))
    power = 1
    while power * 10 <= raw:
        power *= 10
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    raise AssertionError("unreachable")


def _scale(values: Sequence[int]) -> tuple[int, int, int]:
    """Bottom, top and step of the value axis: round numbers around every value and zero."""
    low, high = min(0, *values), max(0, *values)
    step = nice_step(high - low or 1)
    bottom = (low // step) * step
    top = -(-high // step) * step if high > 0 else 0
    if top == bottom:
        top = bottom + step
    return bottom, top, step


class _Canvas:
    def __init__(self, title: str, description: str, labels: Sequence[str], values: Sequence[int]):
        self.id = f"chart-{next(_ids)}"
        self.labels = labels
        self.bottom, self.top, self.step = _scale(values)
        self.parts: list[str] = []
        self.plot_width = WIDTH - LEFT - RIGHT
        self.plot_height = HEIGHT - TOP - BOTTOM
        self.title, self.description = title, description

    def y(self, value: int) -> float:
        share = (value - self.bottom) / (self.top - self.bottom)
        return round(TOP + self.plot_height * (1 - share), 1)

    def slot(self, index: int) -> tuple[float, float]:
        """Left edge and width of the index-th of the category slots."""
        width = self.plot_width / max(len(self.labels), 1)
        return LEFT + index * width, width

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def axes(self, fmt: Format) -> None:
        for value in range(self.bottom, self.top + 1, self.step):
            y = self.y(value)
            self.add(
                f'<line class="gridline" x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}"/>'
                f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{escape(fmt(value))}</text>'
            )
        zero = self.y(0)
        self.add(f'<line class="axis" x1="{LEFT}" y1="{zero}" x2="{WIDTH - RIGHT}" y2="{zero}"/>')
        every = max(1, -(-len(self.labels) // 8))  # at most eight labels along the bottom
        last = len(self.labels) - 1
        for index, label in enumerate(self.labels):
            if (last - index) % every:  # counted back from the newest, which always shows
                continue
            left, width = self.slot(index)
            self.add(
                f'<text x="{round(left + width / 2, 1)}" y="{HEIGHT - BOTTOM + 18}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )

    def legend(self, series: Sequence[Series]) -> None:
        x = LEFT
        for number, item in enumerate(series, start=1):
            self.add(
                f'<rect class="series-{_tone(item, number)}" x="{x}" y="6" width="12" height="12"/>'
                f'<text x="{x + 18}" y="16">{escape(item.label)}</text>'
            )
            x += 30 + 8 * len(item.label)

    def render(self) -> Markup:
        return Markup(
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-labelledby="{self.id}-title {self.id}-desc" '
            f'xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{self.id}-title">{escape(self.title)}</title>'
            f'<desc id="{self.id}-desc">{escape(self.description)}</desc>'
            + "".join(self.parts)
            + "</svg>"
        )


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Format = str,
    description: str = "",
) -> Markup:
    """One line per series over the labelled points (months, oldest first)."""
    values = [v for s in series for v in s.values] or [0]
    canvas = _Canvas(title, description, labels, values)
    canvas.axes(fmt)
    for number, item in enumerate(series, start=1):
        points = []
        for index, value in enumerate(item.values):
            left, width = canvas.slot(index)
            points.append((round(left + width / 2, 1), canvas.y(value), labels[index], value))
        if len(points) > 1:
            coords = " ".join(f"{x},{y}" for x, y, _, _ in points)
            canvas.add(f'<polyline class="line series-{_tone(item, number)}" points="{coords}"/>')
        for x, y, label, value in points:
            tip = f"{label}: {fmt(value)}"
            canvas.add(
                f'<circle class="series-{_tone(item, number)}" cx="{x}" cy="{y}" r="3">'
                f"<title>{escape(item.label)}, {escape(tip)}</title></circle>"
            )
    if len(series) > 1:
        canvas.legend(series)
    return canvas.render()


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Format = str,
    description: str = "",
) -> Markup:
    """Grouped bars: one group per label, one bar per series; negative values hang down."""
    values = [v for s in series for v in s.values] or [0]
    canvas = _Canvas(title, description, labels, values)
    canvas.axes(fmt)
    zero = canvas.y(0)
    count = max(len(series), 1)
    for index, label in enumerate(labels):
        left, width = canvas.slot(index)
        bar = width * 0.8 / count
        for number, item in enumerate(series, start=1):
            value = item.values[index]
            y = canvas.y(value)
            x = round(left + width * 0.1 + (number - 1) * bar, 1)
            canvas.add(
                f'<rect class="series-{_tone(item, number)}" x="{x}" y="{min(y, zero)}" '
                f'width="{round(max(bar - 1, 1), 1)}" height="{round(abs(zero - y), 1)}">'
                f"<title>{escape(item.label)}, {escape(label)}: {escape(fmt(value))}</title></rect>"
            )
    if len(series) > 1:
        canvas.legend(series)
    return canvas.render()
