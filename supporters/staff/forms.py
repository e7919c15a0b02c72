"""Forms of the staff pages: list filters (GET, no CSRF token) and admin changes (POST)."""

from __future__ import annotations

import re
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from supporters.billing.models import GoalMeasure, SubscriptionStatus
from supporters.config import MAX_DUNNING_DAYS, MAX_NOTICE_DAYS, parse_days
from supporters.members.forms import EmailAddress
from supporters.members.models import EMAIL_MAX_LENGTH, Role
from supporters.money import AmountError, parse_amount
from supporters.params import DB_INT_MAX, DB_INT_MIN, parse_int
from supporters.staff.member_list import CUSTOM, NO_SUBSCRIPTION, SORTS

STATUS_LABELS = {
    SubscriptionStatus.ACTIVE.value: _l("Active"),
    SubscriptionStatus.TRIALING.value: _l("Trialing"),
    SubscriptionStatus.PAST_DUE.value: _l("Past due"),
    SubscriptionStatus.UNPAID.value: _l("Unpaid"),
    SubscriptionStatus.PAUSED.value: _l("Paused"),
    SubscriptionStatus.INCOMPLETE.value: _l("Waiting for first payment"),
    SubscriptionStatus.INCOMPLETE_EXPIRED.value: _l("First payment never made"),
    SubscriptionStatus.CANCELED.value: _l("Cancelled"),
}
SORT_LABELS = {
    "newest": _l("Newest first"),
    "oldest": _l("Oldest first"),
    "name": _l("Name"),
    "email": _l("Email address"),
}


class _GetForm(FlaskForm):
    """A form read from the query string: bookmarkable, no CSRF token."""

    class Meta:
        csrf = False


class MemberFilterForm(_GetForm):
    q = StringField(
        _l("Search"),
        description=_l("Any part of a name or an email address."),
        validators=[Optional(), Length(max=254)],
        render_kw={"type": "search", "maxlength": 254},
    )
    status = SelectField(
        _l("Status"),
        description=_l("Of the member's current subscription: the live one, else the latest."),
        choices=[SelectChoice("", _l("Any"))]
        + [SelectChoice(value, label) for value, label in STATUS_LABELS.items()]
        + [SelectChoice(NO_SUBSCRIPTION, _l("Never subscribed"))],
        default="",
        validators=[Optional()],
    )
    tier = SelectField(_l("Tier"), default="", validators=[Optional()])
    interval = SelectField(
        _l("Interval"),
        choices=[
            SelectChoice("", _l("Any")),
            SelectChoice("month", _l("Monthly")),
            SelectChoice("year", _l("Yearly")),
        ],
        default="",
        validators=[Optional()],
    )
    joined_from = DateField(_l("Joined from"), validators=[Optional()])
    joined_to = DateField(_l("Joined until"), validators=[Optional()])
    sort = SelectField(
        _l("Sort by"), choices=[SelectChoice(s, SORT_LABELS[s]) for s in SORTS], default="newest"
    )

    def set_tiers(self, tiers: list[tuple[int, str]]) -> None:
        self.tier.choices = (
            [SelectChoice("", _l("Any"))]
            + [SelectChoice(str(tier_id), name) for tier_id, name in tiers]
            + [SelectChoice(CUSTOM, _l("Custom amount"))]
        )

    def validate_joined_to(self, field: DateField) -> None:
        if field.data and self.joined_from.data and field.data < self.joined_from.data:
            raise ValidationError(_l("The end date is before the start date."))


class PaymentExportForm(_GetForm):
    date_from = DateField(_l("From"), validators=[DataRequired(_l("Enter the first day."))])
    date_to = DateField(_l("Until"), validators=[DataRequired(_l("Enter the last day."))])

    def validate_date_to(self, field: DateField) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date is before the start date."))


class RoleForm(FlaskForm):
    role = SelectField(
        _l("Role"),
        choices=[
            SelectChoice(Role.MEMBER.value, _l("Member")),
            SelectChoice(Role.STAFF.value, _l("Staff: reads reports and members")),
            SelectChoice(Role.ADMIN.value, _l("Admin: also manages tiers, goals, polls and staff")),
        ],
    )


class StaffAccountForm(RoleForm):
    email = StringField(
        _l("Email address"),
        validators=[
            DataRequired(_l("Enter an email address.")),
            Length(max=EMAIL_MAX_LENGTH),
            EmailAddress(),
        ],
        render_kw={"autocomplete": "off", "inputmode": "email", "maxlength": EMAIL_MAX_LENGTH},
    )


class Money:
    """Read a typed amount in the form's currency into minor units (``field.minor_units``)."""

    def __init__(self, currency_field: str = "currency") -> None:
        self.currency_field = currency_field

    def __call__(self, form: FlaskForm, field: StringField) -> None:
        field.minor_units = None
        currency = (form[self.currency_field].data or "").strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            return  # the currency field reports its own error
        # A post without the field leaves the edited tier's own price here, in minor units:
        # only what was typed counts.
        typed = field.data if isinstance(field.data, str) else ""
        try:
            field.minor_units = parse_amount(typed, currency)
        except AmountError as exc:
            raise ValidationError(str(exc)) from exc
        if field.minor_units <= 0:
            raise ValidationError(_l("Enter an amount above zero."))


def _currency_field(**kwargs: Any) -> StringField:
    def iso(form: FlaskForm, field: StringField) -> None:
        if field.data and not re.fullmatch(r"[A-Za-z]{3}", field.data.strip()):
            raise ValidationError(_l("A three-letter ISO code such as EUR."))

    return StringField(
        _l("Currency"),
        validators=[Length(max=3), iso, *kwargs.pop("validators", [])],
        render_kw={"maxlength": 3, "autocomplete": "off"},
        **kwargs,
    )


# An order is stored in an integer column: any number it holds will do.
_position_range = NumberRange(
    min=DB_INT_MIN, max=DB_INT_MAX, message=_l("Enter a whole number from %(min)d to %(max)d.")
)


class TierForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=80)])
    slug = StringField(
        _l("Short name in links"),
        description=_l("Lower-case letters, digits and dashes, e.g. supporter."),
        validators=[DataRequired(), Length(max=64)],
    )
    description = TextAreaField(_l("What it gives"), validators=[Length(max=2000)])
    currency = _currency_field(validators=[DataRequired()])
    monthly_amount = StringField(
        _l("Monthly price"),
        validators=[DataRequired(), Money()],
        render_kw={"inputmode": "decimal"},
    )
    yearly_amount = StringField(
        _l("Yearly price"), validators=[DataRequired(), Money()], render_kw={"inputmode": "decimal"}
    )
    position = IntegerField(
        _l("Order on the support page"), default=0, validators=[Optional(), _position_range]
    )
    is_active = BooleanField(_l("Offered to new patrons"), default=True)

    def validate_slug(self, field: StringField) -> None:
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", field.data or ""):
            raise ValidationError(_l("Use lower-case letters, digits and dashes."))
        if field.data == CUSTOM:
            raise ValidationError(_l("This name is reserved for custom amounts."))


class GoalForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=120)])
    description = TextAreaField(_l("Description"), validators=[Length(max=2000)])
    measure = SelectField(
        _l("Counts"),
        choices=[
            SelectChoice(GoalMeasure.MONTHLY_REVENUE.value, _l("Recurring revenue per month")),
            SelectChoice(GoalMeasure.PATRONS.value, _l("Patrons")),
        ],
    )
    target = StringField(
        _l("Target"),
        description=_l("An amount per month for a revenue goal, a number of patrons otherwise."),
        validators=[DataRequired()],
    )
    currency = _currency_field(description=_l("For a revenue goal."))
    position = IntegerField(_l("Order"), default=0, validators=[Optional(), _position_range])
    is_active = BooleanField(_l("Shown to readers"), default=True)

    def validate_target(self, field: StringField) -> None:
        field.value = None
        # A post without the field leaves the edited goal's own target here, in minor units:
        # only what was typed counts.
        typed = field.data if isinstance(field.data, str) else ""
        if self.measure.data == GoalMeasure.PATRONS.value:
            field.value = parse_int(typed, minimum=1)
            if field.value is None:
                raise ValidationError(_l("Enter a whole number of patrons."))
            return
        currency = (self.currency.data or "").strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise ValidationError(_l("A revenue goal needs a currency."))
        try:
            field.value = parse_amount(typed, currency)
        except AmountError as exc:
            raise ValidationError(str(exc)) from exc
        if field.value <= 0:
            raise ValidationError(_l("Enter an amount above zero."))


class AuditFilterForm(_GetForm):
    action = StringField(_l("Action"), validators=[Optional(), Length(max=64)])


class ForgetBounceForm(FlaskForm):
    """Forget that one address bounces: its button sits beside it, the address in a hidden
    field."""

    email = HiddenField(validators=[DataRequired(), Length(max=EMAIL_MAX_LENGTH)])


class DaysField(StringField):
    """The days of a schedule, typed as whole numbers separated by commas ("0, 3, 7").

    ``days`` holds them once valid: sorted, once each, from ``first`` to ``MAX_NOTICE_DAYS``,
    at most ``MAX_DUNNING_DAYS`` of them; empty text is no days.
    """

    def __init__(self, label: Any, *, first: int, example: str, **kwargs: Any) -> None:
        kwargs.setdefault("validators", [Length(max=200)])
        super().__init__(label, **kwargs)
        self.first = first
        self.example = example
        self.days: list[int] = []

    def show(self, days: list[int]) -> None:
        self.data = ", ".join(map(str, days))

    def pre_validate(self, form: Any) -> None:
        try:
            days = parse_days(self.data or "")
        except ValueError as exc:
            raise ValidationError(
                _l("Write whole numbers of days, like %(example)s.", example=self.example)
            ) from exc
        if any(not self.first <= day <= MAX_NOTICE_DAYS for day in days):
            raise ValidationError(
                _l(
                    "Each day is from %(first)s to %(most)s.",
                    first=self.first,
                    most=MAX_NOTICE_DAYS,
                )
            )
        if len(days) > MAX_DUNNING_DAYS:
            raise ValidationError(_l("At most %(most)s days.", most=MAX_DUNNING_DAYS))
        self.days = days


class EmailScheduleForm(FlaskForm):
    """When time-based messages go out: the dunning days and the yearly renewal notice."""

    dunning_days = DaysField(
        _l("Payment failed: days of the grace period to write on"),
        first=0,
        example="0, 3, 7",
        description=_l(
            "Whole numbers separated by commas; 0 is the day the payment fails. "
            "Leave empty to send no reminders."
        ),
    )
    renewal_notice_days = IntegerField(
        _l("Yearly renewal: days of notice"),
        validators=[
            DataRequired(message=_l("Give a number of days.")),
            NumberRange(min=1, max=MAX_NOTICE_DAYS),
        ],
    )

    def __init__(self, *args: Any, keep_days: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_days = keep_days

    def validate(self, extra_validators: Any = None) -> bool:
        if not super().validate(extra_validators):
            return False
        # A notice is known to be sent while its message is kept; past that it could go again.
        longest = max([*self.dunning_days.days, self.renewal_notice_days.data or 0]) + 1
        if longest > self.keep_days:
            keep = f"{self.keep_days:g}"
            self.dunning_days.errors.append(
                _l(
                    "Sent messages are kept %(keep)s days: keep every day below that, "
                    "or messages could be sent twice.",
                    keep=keep,
                )
            )
            return False
        return True


class GrantForm(FlaskForm):
    """A complimentary membership: a tier, an end date or none, and why."""

    tier = SelectField(_l("Tier"), validate_choice=True)
    ends_on = DateField(
        _l("Last day"),
        description=_l("Leave empty for a membership that lasts until you end it."),
        validators=[Optional()],
    )
    reason = StringField(
        _l("Reason"),
        description=_l("For the audit log and the other staff: why this member gets it."),
        validators=[DataRequired(_l("Say why.")), Length(max=500)],
        render_kw={"maxlength": 500},
    )

    def set_tiers(self, tiers: list[tuple[str, str]]) -> None:
        self.tier.choices = [SelectChoice(slug, name) for slug, name in tiers]


class RetryJobForm(FlaskForm):
    """A retry button: the job is in the address, the form carries the CSRF token alone."""
