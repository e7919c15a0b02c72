"""Server-side SVG charts: allowed by the CSP (no inline style), accessible, escaped."""

from __future__ import annotations

import re

from supporters.staff import charts


def test_line_chart_has_a_title_points_and_no_inline_style() -> None:
    svg = charts.line_chart(
        "Patrons <&>",
        ["Jan", "Feb", "Mar"],
        [charts.Series("Patrons", [3, 10, 7])],
        description="Three months",
    )
    assert svg.startswith('<svg class="chart"') and 'role="img"' in svg
    assert "<title" in svg and "Patrons &lt;&amp;&gt;" in svg
    assert 'class="line series-1"' in svg
    assert svg.count("<circle") == 3
    assert "style=" not in svg and "<script" not in svg
    assert "Feb: 10" in svg  # each point tells its value


def test_bar_chart_groups_series_and_hangs_negative_values_down() -> None:
    svg = charts.bar_chart(
        "Gained and lost",
        ["Jan", "Feb"],
        [charts.Series("Gained", [500, 0]), charts.Series("Lost", [-250, -1000], tone=2)],
        fmt=lambda v: f"{v / 100:.2f}",
    )
    assert svg.count("<rect") == 4 + 2  # bars, and the legend's swatches
    assert 'class="series-2"' in svg
    heights = [float(h) for h in re.findall(r'height="([\d.]+)"><title>', svg)]
    assert all(h >= 0 for h in heights)
    assert "-10.00" in svg  # the axis reaches down to the largest loss


def test_axis_steps_are_round_numbers() -> None:
    assert charts.nice_step(7) == 2
    assert charts.nice_step(95000) == 50000
    assert charts.nice_step(0) == 1


def test_empty_series_still_draw() -> None:
    svg = charts.line_chart("Nothing yet", [], [charts.Series("Patrons", [])])
    assert "<svg" in svg
