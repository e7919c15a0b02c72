"""The voting blueprint (``voting``, under /polls) and what all its pages share: the template
filters for weights and shares, the status code of each refusal, who is looking, and loading a
poll or topic (or answering 404)."""

from __future__ import annotations

from fractions import Fraction

from flask import Blueprint, abort
from flask_babel import format_decimal
from flask_login import current_user

from supporters.billing.models import Subscription
from supporters.members.auth import current_member
from supporters.members.models import Member
from supporters.voting import errors, polls, results, topics
from supporters.voting.models import Poll, PollState, Topic

bp = Blueprint("voting", __name__, url_prefix="/polls")

_STATUS: dict[type[errors.VotingError], int] = {
    errors.PollNotFound: 404,
    errors.NotEligible: 403,
    errors.InvalidBallot: 400,
    errors.InvalidPoll: 400,
    errors.PollNotOpen: 409,
    errors.TransitionRefused: 409,
}

RenderResult = str | tuple[str, int]


def error_status(error: errors.VotingError) -> int:
    """The status code a page answers a refusal with."""
    return _STATUS.get(type(error), 400)


@bp.app_template_filter("vote_weight")
def _format_weight(weight: Fraction | int) -> str:
    """Millionths of a vote as votes, two decimals, in the reader's locale."""
    return str(format_decimal(results.votes(weight), format="#,##0.00"))


@bp.app_template_filter("vote_percent")
def _format_percent(share: Fraction | None) -> str:
    """A share (0..1) as a percentage, one decimal, in the reader's locale."""
    return str(format_decimal(results.percent(share), format="#,##0.0")) + "%"


def current_viewer() -> Member | None:
    """The signed-in member, or None for a visitor."""
    return current_member() if current_user.is_authenticated else None


def viewer_subscription() -> Subscription | None:
    """The signed-in member's current subscription (loaded with the session), if any."""
    return current_user.subscription if current_user.is_authenticated else None


def load_poll(poll_id: int) -> tuple[Poll, PollState]:
    """The poll and its state, or 404 (a draft is 404 to all but staff)."""
    try:
        return polls.get_poll(poll_id, viewer=current_viewer())
    except errors.PollNotFound:
        abort(404)


def load_topic(topic_id: int) -> Topic:
    """The topic, or 404."""
    topic = topics.find_topic(topic_id)
    if topic is None:
        abort(404)
    return topic
