"""Forms of the Patreon import pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import EmailField, HiddenField
from wtforms.validators import DataRequired, Length, Regexp

from supporters.staff.forms import DaysField

#: An upload's key: a random token, nothing that could name another file.
UPLOAD_KEY = r"^[A-Za-z0-9_-]{32,64}$"


class UploadForm(FlaskForm):
    file = FileField(
        _l("Patreon members export (CSV)"),
        description=_l(
            "On Patreon: Audience, Relationship manager, Export CSV. Nothing is imported until "
            "you confirm."
        ),
        validators=[FileRequired(_l("Choose the file to import."))],
        render_kw={"accept": ".csv,text/csv"},
    )


class ConfirmForm(FlaskForm):
    """The upload to apply; the tier mapping comes as ``map-<n>`` fields (see the view)."""

    upload = HiddenField(validators=[DataRequired(), Regexp(UPLOAD_KEY)])


class InviteForm(FlaskForm):
    """Invite every imported patron not invited yet, or (with an address) one of them."""

    email = EmailField(
        _l("Only this patron (optional)"),
        description=_l("Leave empty to invite everyone who has not been invited yet."),
        validators=[Length(max=254)],
        render_kw={"autocomplete": "off"},
    )


class ReminderDaysForm(FlaskForm):
    """On which days after the invitation a patron who has not moved is reminded."""

    reminder_days = DaysField(
        _l("Reminders: days after the invitation"),
        first=1,
        example="7, 21",
        description=_l(
            "Whole numbers separated by commas, like 7, 21. Leave empty to send no reminders."
        ),
    )
