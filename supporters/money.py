"""Money is an integer count of the currency's minor unit plus an ISO 4217 code.

This module is the one place that knows how many decimals a currency has, so zero-decimal
currencies (JPY, KRW, ...) and three-decimal ones need no special cases elsewhere.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision
from flask_babel import gettext as _

from supporters.params import DB_INT_MAX


class AmountError(ValueError):
    """Text that cannot be read as an amount of the given currency."""


def exponent(currency: str) -> int:
    """Return how many decimal places the currency's minor unit has (EUR 2, JPY 0)."""
    return int(get_currency_precision(currency.upper()))


def to_decimal(amount: int, currency: str) -> Decimal:
    """Turn minor units into an exact decimal of major units: ``(1250, "EUR") -> 12.50``."""
    return Decimal(amount).scaleb(-exponent(currency))


def parse_amount(text: str, currency: str, *, maximum: int = DB_INT_MAX) -> int:
    """Read a major-unit amount typed by a person (``"12.5"``, ``"12,50"``) into minor units.

    :raises AmountError: not a number, negative, more than ``maximum`` minor units (by default
        what an amount column holds), or more decimals than the currency has.
    """
    cleaned = text.strip().replace(" ", "").replace("\u00a0", "")
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise AmountError("Enter an amount such as 5 or 12.50.") from exc
    if not value.is_finite() or value < 0:
        raise AmountError("Enter a positive amount.")
    # Before scaling: "1e99999999" is a valid Decimal that no context can scale.
    if value > to_decimal(maximum, currency):
        raise AmountError(
            _("Enter an amount of at most %(amount)s.", amount=to_decimal(maximum, currency))
        )
    minor = value.scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        raise AmountError(f"{currency.upper()} amounts have at most {exponent(currency)} decimals.")
    return int(minor)


def format_money(amount: int, currency: str, locale: str = "en") -> str:
    """Format minor units for people in the given locale: ``(1250, "EUR", "en") -> "€12.50"``."""
    return format_currency(to_decimal(amount, currency), currency.upper(), locale=locale)
