"""Forms of the Patreon import pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField
from wtforms.validators import DataRequired, Regexp

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
