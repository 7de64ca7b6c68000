"""Geometry of the dashboard's usage chart: stacked bars per day, one colour per model.

Pure functions over the rows of `billing.selectors.user_dashboard`, so the picture is
tested without a browser and drawn as server-side SVG (no JavaScript chart library,
no CDN: the gateway often runs without internet access).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

# Tableau 10: distinguishable, and still readable for the common colour-vision deficiencies.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")

WIDTH = 720
HEIGHT = 300
# A phone shows a narrower picture of its own rather than the wide one scaled down to unreadable text:
# at about this width the SVG's 12px labels reach the screen at about 12px.
NARROW_WIDTH = 340
NARROW_HEIGHT = 240
RIGHT = 12
TOP = 24      # room for the axis title
BOTTOM = 36   # room for the day labels
TICKS = 4
CHAR_WIDTH = 6.8   # of a 12px digit or "$", to fit the y-axis labels and the day labels


@dataclass(frozen=True)
class Bar:
    model: str
    day: str
    value: int          # in quota units
    label: str          # value in the display unit
    color: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class DayLabel:
    day: str
    x: float            # centre of the day's column
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    days: tuple[DayLabel, ...]
    legend: tuple[tuple[str, str], ...]    # (model, colour)

    @property
    def empty(self) -> bool:
        return not self.bars


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above `value`, so tick labels are round numbers."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10 ** exponent
        if candidate >= value * (1 - 1e-12):
            return candidate
    return 10 ** (exponent + 1)  # pragma: no cover - the loop ends at 10


def model_colors(models: Iterable[str]) -> dict[str, str]:
    """A stable colour per model: sorted by name, so a model keeps its colour from day to day."""
    return {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(sorted(set(models)))}


def usage_chart(rows: Iterable[Mapping], *, days: list[str], unit: Decimal | int = 1,
                fmt: Callable[[Decimal], str] = lambda v: f"{v:g}", width: int = WIDTH,
                height: int = HEIGHT) -> Chart:
    """Stacked bars of each day's quota by model.

    `rows` are user_dashboard rows (Day, ModelName, Quota); `days` the ISO dates of the x axis,
    oldest first; `unit` how many quota make one display unit (QuotaPerUnit for US$, 1 for quota),
    so the axis ticks are round in the unit the user reads; `fmt` writes a value in that unit.
    Rows outside `days` and zero-quota rows draw nothing. The y axis takes as much room as its
    longest label; a day is labelled MM-DD, or DD where its column is too narrow for that.
    Geometry is float; labels are exact decimals (a float carries 16 digits: 999,999,999,999,999,999
    quota would print a wrong last cent).
    """
    per_day: dict[str, dict[str, int]] = {day: {} for day in days}
    for row in rows:
        day, model, quota = row["Day"], row["ModelName"] or "", int(row["Quota"] or 0)
        if day in per_day and quota > 0:
            per_day[day][model] = per_day[day].get(model, 0) + quota
    colors = model_colors(m for models in per_day.values() for m in models)

    peak = max((sum(models.values()) for models in per_day.values()), default=0)
    scale = float(unit)
    top = nice_ceiling(peak / scale) if peak else 1.0  # in the display unit
    axis_max = top * scale
    tick_labels = [fmt(Decimal(repr(top)) * k / TICKS) for k in range(TICKS + 1)] if peak else []

    # At least room for the unit's name ("quota", "US$") written above the axis.
    plot_left = max(48, round(12 + CHAR_WIDTH * max((len(label) for label in tick_labels), default=1)))
    plot_right = width - RIGHT
    plot_top, plot_bottom = TOP, height - BOTTOM
    plot_height = plot_bottom - plot_top
    column = (plot_right - plot_left) / max(len(days), 1)
    bar_width = round(column * 0.6, 2)
    day_chars = 5 if column >= CHAR_WIDTH * 5 + 4 else 2     # "MM-DD" or "DD", with a little air between

    bars: list[Bar] = []
    labels: list[DayLabel] = []
    for i, day in enumerate(days):
        centre = plot_left + column * (i + 0.5)
        labels.append(DayLabel(day=day, x=round(centre, 2), label=day[-day_chars:]))
        base = float(plot_bottom)
        for model in sorted(per_day[day]):
            value = per_day[day][model]
            bar_height = value / axis_max * plot_height
            base -= bar_height
            bars.append(Bar(model=model, day=day, value=value, label=fmt(Decimal(value) / Decimal(unit)),
                            color=colors[model],
                            x=round(centre - bar_width / 2, 2), y=round(base, 2), width=bar_width,
                            height=round(bar_height, 2)))

    ticks = tuple(
        Tick(y=round(plot_bottom - plot_height * k / TICKS, 2), label=label) for k, label in enumerate(tick_labels)
    ) if bars else ()
    return Chart(width=width, height=height, plot_left=plot_left, plot_right=plot_right, plot_top=plot_top,
                 plot_bottom=plot_bottom, bars=tuple(bars), ticks=ticks, days=tuple(labels),
                 legend=tuple(colors.items()))
