"""Forms of the embeds' admin page."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length


class OriginForm(FlaskForm):
    """A site to allow; cleaned and checked by :func:`supporters.public.origins.clean_origin`."""

    origin = StringField(
        _l("Site address"),
        validators=[DataRequired(_l("Enter the address of a site.")), Length(max=255)],
        description=_l("Scheme, host and, if not the usual one, port: https://news.example"),
    )


class RemoveOriginForm(FlaskForm):
    origin_id = HiddenField()
