"""Locale choice and the formatting helpers templates use for money and dates."""

from __future__ import annotations

import datetime as dt

from flask import current_app, g, has_request_context, request
from flask_babel import format_date, format_datetime, get_locale
from flask_login import current_user

from supporters.money import format_money


def select_locale() -> str | None:
    """The member's chosen language, else the browser's best match among those we ship."""
    languages: list[str] = current_app.config["LANGUAGES"]
    if not has_request_context():  # commands and emails sent outside a request
        return str(current_app.config["DEFAULT_LOCALE"])
    if g.get("is_served_alike"):  # the same for every visitor: the address decides
        asked = request.args.get("lang", "")
        return asked if asked in languages else str(current_app.config["DEFAULT_LOCALE"])
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return str(current_user.locale)
    return request.accept_languages.best_match(languages) or current_app.config["DEFAULT_LOCALE"]


def select_timezone() -> str:
    return "UTC"


def money(amount: int, currency: str) -> str:
    """Minor units formatted for the reader's locale: ``money(1250, "EUR") -> "€12.50"``."""
    return format_money(amount, currency, str(get_locale() or "en"))


def date(value: dt.date | dt.datetime | None, style: str = "medium") -> str:
    return "" if value is None else str(format_date(value, style))


def datetime(value: dt.datetime | None, style: str = "medium") -> str:
    return "" if value is None else str(format_datetime(value, style))
