"""Forms of the voting pages: ballots, proposals, and the staff's poll and topic forms."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    URL,
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
)

from supporters.billing.models import Tier
from supporters.voting.models import ResultsVisibility, Weighting

TITLE_MAX = 160
PITCH_MAX = 2000
URL_MAX = 500
REASON_MIN = 10
REASON_MAX = 2000
MAX_CHOICES_LIMIT = 10
TIER_WEIGHT_LIMIT = 1000
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]


def choices_of(pairs: Iterable[tuple[Any, str]]) -> list[SelectChoice]:
    """Options of a select field from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


_web_address = Regexp(
    r"^https?://", message=_l("Enter a web address starting with https:// or http://.")
)


class ProposalForm(FlaskForm):
    title = StringField(
        _l("Topic"),
        description=_l("One line: the question you want answered."),
        validators=[
            DataRequired(message=_l("Give your topic a title.")),
            Length(max=TITLE_MAX, message=_l("A title has at most %(max)d characters.")),
        ],
        render_kw={"maxlength": TITLE_MAX},
    )
    pitch = TextAreaField(
        _l("Why it matters"),
        description=_l("A few sentences: what you know, and what you would like us to find out."),
        validators=[
            DataRequired(message=_l("Tell us a little about the topic.")),
            Length(max=PITCH_MAX, message=_l("A pitch has at most %(max)d characters.")),
        ],
        render_kw={"maxlength": PITCH_MAX, "rows": 5},
    )
    link_url = StringField(
        _l("Link (optional)"),
        description=_l("A page that shows what you mean: a document, a report, an article."),
        validators=[
            Optional(),
            Length(max=URL_MAX, message=_l("A link has at most %(max)d characters.")),
            _web_address,
            URL(message=_l("This is not a web address we can open.")),
        ],
        render_kw={"maxlength": URL_MAX, "inputmode": "url"},
    )


class TopicForm(FlaskForm):
    """Staff write a topic themselves."""

    title = ProposalForm.title
    pitch = TextAreaField(
        _l("Pitch"),
        validators=[Length(max=PITCH_MAX, message=_l("A pitch has at most %(max)d characters."))],
        render_kw={"maxlength": PITCH_MAX, "rows": 3},
    )


class ReasonForm(FlaskForm):
    """Reject a proposal or decline a topic: always with a reason people will read."""

    reason = TextAreaField(
        _l("Reason"),
        validators=[
            DataRequired(message=_l("Give a reason: the patrons will read it.")),
            Length(
                min=REASON_MIN,
                max=REASON_MAX,
                message=_l("Write between %(min)d and %(max)d characters."),
            ),
        ],
        render_kw={"rows": 3, "maxlength": REASON_MAX},
    )


class DeclineWinnerForm(ReasonForm):
    topic_id = SelectField(_l("Winning topic"), coerce=int, validate_choice=True)


class MergeForm(FlaskForm):
    into = SelectField(_l("Merge into"), coerce=int)


class AddOptionForm(FlaskForm):
    topic_id = SelectField(_l("Shortlisted topic"), coerce=int)


class PublishTopicForm(FlaskForm):
    article_url = StringField(
        _l("Article address"),
        validators=[
            DataRequired(message=_l("Enter the address of the published article.")),
            Length(max=URL_MAX, message=_l("A link has at most %(max)d characters.")),
            _web_address,
            URL(message=_l("This is not a web address we can open.")),
        ],
        render_kw={"maxlength": URL_MAX, "inputmode": "url"},
    )
    published_on = DateField(
        _l("Published on"),
        validators=[DataRequired(message=_l("Enter the date the article was published."))],
    )


class PollForm(FlaskForm):
    question = StringField(
        _l("Question"),
        validators=[
            DataRequired(message=_l("Ask a question.")),
            Length(max=200, message=_l("A question has at most %(max)d characters.")),
        ],
        render_kw={"maxlength": 200},
    )
    description = TextAreaField(
        _l("Description (optional)"),
        validators=[Length(max=5000, message=_l("At most %(max)d characters."))],
        render_kw={"rows": 3},
    )
    opens_at = DateTimeLocalField(
        _l("Opens (UTC)"),
        description=_l("Leave empty to open the poll when you publish it."),
        format=DATETIME_FORMATS,
        validators=[Optional()],
    )
    closes_at = DateTimeLocalField(
        _l("Closes (UTC)"),
        description=_l("Needed to publish. The poll closes by itself at this time."),
        format=DATETIME_FORMATS,
        validators=[Optional()],
    )
    max_choices = IntegerField(
        _l("Topics each patron may choose"),
        default=1,
        validators=[
            InputRequired(message=_l("Enter a number.")),
            NumberRange(
                min=1,
                max=MAX_CHOICES_LIMIT,
                message=_l("Enter a number from %(min)d to %(max)d."),
            ),
        ],
    )
    results_visibility = SelectField(
        _l("Patrons see the results"),
        choices=[
            SelectChoice(ResultsVisibility.AFTER_VOTING.value, _l("once they have voted")),
            SelectChoice(ResultsVisibility.ALWAYS.value, _l("at any time")),
            SelectChoice(ResultsVisibility.AFTER_CLOSING.value, _l("only after the poll closes")),
        ],
        default=ResultsVisibility.AFTER_VOTING.value,
    )
    weighting = SelectField(
        _l("How votes count"),
        choices=[
            SelectChoice(Weighting.EQUAL.value, _l("One patron, one vote")),
            SelectChoice(Weighting.TIER.value, _l("Weighted by tier (the weights below)")),
            SelectChoice(
                Weighting.SQRT_AMOUNT.value, _l("Weighted by the square root of the monthly amount")
            ),
        ],
        default=Weighting.EQUAL.value,
    )
    weight_cap_percent = IntegerField(
        _l("Cap on one patron's share, in percent (optional)"),
        description=_l("No single ballot may carry more than this share of the poll."),
        validators=[
            Optional(),
            NumberRange(min=1, max=100, message=_l("Enter a percentage from %(min)d to %(max)d.")),
        ],
    )
    is_restricted_to_tiers = BooleanField(_l("Only patrons of the tiers ticked below may vote"))

    tier_ids: Sequence[int] = ()

    def tier_fields(self) -> list[tuple[Any, Any]]:
        """(may-vote checkbox, weight field) per tier, in the tiers' order."""
        return [(self[f"tier_{i}_may_vote"], self[f"tier_{i}_weight"]) for i in self.tier_ids]

    def tier_rules(self) -> dict[int, tuple[bool, int]]:
        return {
            i: (bool(self[f"tier_{i}_may_vote"].data), int(self[f"tier_{i}_weight"].data or 0))
            for i in self.tier_ids
        }

    @staticmethod
    def aware(value: dt.datetime | None) -> dt.datetime | None:
        """Times are typed in UTC (the site's time zone)."""
        return value.replace(tzinfo=dt.UTC) if value is not None else None


def poll_form(tiers: Sequence[Tier], **kwargs: Any) -> PollForm:
    """A poll form with a may-vote box and a weight for each tier."""

    class TieredPollForm(PollForm):
        pass

    for tier in tiers:
        setattr(
            TieredPollForm,
            f"tier_{tier.id}_may_vote",
            BooleanField(_l("%(tier)s patrons may vote", tier=tier.name), default=True),
        )
        setattr(
            TieredPollForm,
            f"tier_{tier.id}_weight",
            IntegerField(
                _l("Weight of a %(tier)s vote", tier=tier.name),
                default=1,
                validators=[
                    InputRequired(message=_l("Enter a weight.")),
                    NumberRange(
                        min=0,
                        max=TIER_WEIGHT_LIMIT,
                        message=_l("Enter a whole number from %(min)d to %(max)d."),
                    ),
                ],
            ),
        )
    TieredPollForm.tier_ids = [tier.id for tier in tiers]
    return TieredPollForm(**kwargs)
