"""Exact fractions as the numbers people read: one rounding (half up) for every page and CSV.

Shares, averages and vote weights are kept as :class:`~fractions.Fraction` until they are shown,
so that rounding happens once, at the end, the same way everywhere.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction


def round_half_up(value: Fraction) -> int:
    """The nearest integer, halves away from zero."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    rounded = whole + (2 * rest >= value.denominator)
    return rounded if value >= 0 else -rounded


def decimal(value: Fraction, places: int) -> Decimal:
    """``value`` with ``places`` decimals, rounded half up (exact: no float on the way)."""
    return Decimal(round_half_up(value * 10**places)).scaleb(-places)
