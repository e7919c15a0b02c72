"""Forms of the account pages. Every field has a label; every error reads as a sentence."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

from supporters.members.models import DISPLAY_NAME_MAX_LENGTH, EMAIL_MAX_LENGTH
from supporters.members.redirects import safe_next
from supporters.members.services import CODE_DIGITS, InvalidEmail, normalize_email


class EmailAddress:
    """Validate with the same rules the services apply, and keep the normalized address."""

    def __call__(self, form: FlaskForm, field: StringField) -> None:
        try:
            field.normalized = normalize_email(field.data or "")
        except InvalidEmail as exc:
            raise ValidationError(str(exc)) from exc


def _email_field(label: str) -> StringField:
    return StringField(
        label,
        validators=[
            DataRequired(message=_l("Enter your email address.")),
            Length(
                max=EMAIL_MAX_LENGTH, message=_l("An email address has at most %(max)d characters.")
            ),
            EmailAddress(),
        ],
        render_kw={"autocomplete": "email", "inputmode": "email", "maxlength": EMAIL_MAX_LENGTH},
    )


def _next_field() -> HiddenField:
    # Filtered as it is read, from the query string or the form: nothing else ever sees it raw.
    return HiddenField(filters=[safe_next])


class SignInForm(FlaskForm):
    email = _email_field(_l("Email address"))
    next = _next_field()


class SignUpForm(FlaskForm):
    display_name = StringField(
        _l("Your name"),
        description=_l("How we greet you. Other patrons never see it."),
        validators=[
            Length(
                max=DISPLAY_NAME_MAX_LENGTH,
                message=_l("A name has at most %(max)d characters."),
            )
        ],
        render_kw={"autocomplete": "name", "maxlength": DISPLAY_NAME_MAX_LENGTH},
    )
    email = _email_field(_l("Email address"))
    next = _next_field()


class CodeForm(FlaskForm):
    code = StringField(
        _l("Code from the email"),
        validators=[
            DataRequired(message=_l("Enter the %(n)d-digit code from the email.", n=CODE_DIGITS)),
            Regexp(
                rf"^\s*(\d\s*){{{CODE_DIGITS}}}$",
                message=_l("The code is %(n)d digits, like 123456.", n=CODE_DIGITS),
            ),
        ],
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "numeric",
            "maxlength": CODE_DIGITS + 2,
        },
    )


class ProfileForm(FlaskForm):
    display_name = SignUpForm.display_name


class ChangeEmailForm(FlaskForm):
    email = _email_field(_l("New email address"))


class EmptyForm(FlaskForm):
    """A button that changes state (sign out, confirm a link): only the CSRF token is checked."""


class MailPreferencesForm(FlaskForm):
    """The optional mail a member wants: a box per topic (its choices are set per member)."""

    topics = SelectMultipleField(_l("Emails you want"), choices=[], validate_choice=True)
