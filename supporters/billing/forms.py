"""Forms of the support page and of the member's own support settings."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from supporters.billing.models import Tier
from supporters.members.forms import EmailAddress
from supporters.members.models import EMAIL_MAX_LENGTH
from supporters.money import AmountError, parse_amount

INTERVALS = [
    SelectChoice("month", _l("Monthly")),
    SelectChoice("year", _l("Yearly")),
    SelectChoice("once", _l("Once")),
]
RECURRING = [c for c in INTERVALS if c.value != "once"]


class Amount:
    """Read a typed amount into minor units of the site's currency, keeping it on the field."""

    def __call__(self, form: FlaskForm, field: StringField) -> None:
        field.minor_units = None
        if not (field.data or "").strip():
            return
        try:
            field.minor_units = parse_amount(field.data, current_app.config["CURRENCY"])
        except AmountError as exc:
            raise ValidationError(str(exc)) from exc


class ChoiceForm(FlaskForm):
    """A tier (or "custom" with an amount) and an interval."""

    tier = RadioField(
        _l("Level of support"), validators=[InputRequired(_l("Choose a tier or an amount."))]
    )
    amount = StringField(
        _l("Your amount"),
        description=_l("For a custom amount: how much each time, e.g. 7 or 12.50."),
        validators=[Optional(), Length(max=12), Amount()],
        render_kw={"inputmode": "decimal", "autocomplete": "off", "maxlength": 12},
    )
    interval = RadioField(
        _l("How often"), choices=INTERVALS, default="month", validators=[InputRequired()]
    )

    def set_tiers(self, tiers: list[Tier], labels: dict[str, Any]) -> None:
        self.tier.choices = [SelectChoice(t.slug, labels[t.slug]) for t in tiers] + [
            SelectChoice("custom", _l("Another amount"))
        ]


class SupportForm(ChoiceForm):
    """The support page's form; a visitor who is not signed in also gives an email address."""

    email = StringField(
        _l("Email address"),
        description=_l("We send a code to confirm it; no password needed."),
        validators=[Optional(), Length(max=EMAIL_MAX_LENGTH), EmailAddress()],
        render_kw={"autocomplete": "email", "inputmode": "email", "maxlength": EMAIL_MAX_LENGTH},
    )
    attempt = HiddenField()


class ChangeForm(ChoiceForm):
    """Change tier, amount or interval of a running subscription."""

    interval = RadioField(
        _l("How often"), choices=RECURRING, default="month", validators=[InputRequired()]
    )


class CancelForm(FlaskForm):
    reason = TextAreaField(
        _l("Why are you leaving? (optional)"),
        description=_l("Staff read every answer."),
        validators=[Length(max=500, message=_l("At most %(max)d characters, please."))],
        render_kw={"rows": 3, "maxlength": 500},
    )


class OfferForm(ChangeForm):
    """An offer's page: its tier (or amount) and interval, which the member may change."""

    attempt = HiddenField()
