"""The staff blueprint, and the helpers its templates share."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any

from flask import Blueprint
from flask_babel import format_percent

from supporters import numbers
from supporters.i18n import date as format_date
from supporters.i18n import money
from supporters.staff.models import COHORT_OFFSETS

bp = Blueprint("staff", __name__, url_prefix="/staff")


def percent(value: Fraction | None, places: int = 1) -> str:
    """A share as a percentage for the reader's locale, rounded half up; a dash when unknown."""
    if value is None:
        return "–"
    return str(format_percent(numbers.decimal(value, places + 2), f"#,##0.{'0' * places}%"))


def signed_money(amount: int, currency: str) -> str:
    return ("+" if amount > 0 else "") + money(amount, currency)


def month_label(day: dt.date) -> str:
    return format_date(day, "MMM yyyy")


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "percent": percent,
        "signed_money": signed_money,
        "month_label": month_label,
        "round_half_up": numbers.round_half_up,
        "cohort_offsets": COHORT_OFFSETS,
    }
