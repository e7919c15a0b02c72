"""Casting and changing a ballot through the service: one row per member, choices replaced."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters.billing.membership import current_subscription
from supporters.billing.models import SubscriptionStatus
from supporters.extensions import db
from supporters.voting import ballots, errors
from supporters.voting.models import WEIGHT_SCALE, PollState, Vote, VoteChoice, Weighting
from tests.voting.conftest import Clock
from tests.voting.factories import make_patron, make_poll, make_subscription, make_tier, option_ids


def _ballots() -> list[tuple[int, int, int, frozenset[int]]]:
    """Every stored ballot as (poll, member, weight, options)."""
    choices: dict[int, set[int]] = {}
    for vote_id, option_id in db.session.execute(
        sa.select(VoteChoice.vote_id, VoteChoice.option_id)
    ):
        choices.setdefault(vote_id, set()).add(option_id)
    return sorted(
        (vote.poll_id, vote.member_id, vote.weight, frozenset(choices.get(vote.id, ())))
        for vote in db.session.scalars(sa.select(Vote))
    )


def test_a_patron_votes_then_changes_the_vote(app: Flask, clock: Clock) -> None:
    patron = make_patron()
    poll = make_poll(max_choices=2)
    a, b, c = option_ids(poll)

    first = ballots.cast_vote(poll, patron, [a])
    db.session.commit()
    assert (first.is_new, first.option_ids, first.weight) == (True, (a,), WEIGHT_SCALE)
    assert _ballots() == [(poll.id, patron.id, WEIGHT_SCALE, frozenset({a}))]

    clock.advance(hours=2)
    changed = ballots.cast_vote(poll, patron, [b, c])
    db.session.commit()
    assert (changed.vote_id, changed.is_new) == (first.vote_id, False)
    vote = db.session.get(Vote, first.vote_id)
    assert vote is not None
    assert (vote.created_at, vote.updated_at) == (clock.at - dt.timedelta(hours=2), clock.at)
    assert _ballots() == [(poll.id, patron.id, WEIGHT_SCALE, frozenset({b, c}))]
    assert ballots.chosen_option_ids(vote) == {b, c}
    # The poll counts ballots, not changes: a second patron makes two.
    assert poll.ballot_count == 1
    ballots.cast_vote(poll, make_patron(), [a])
    db.session.commit()
    assert poll.ballot_count == 2 == len(_ballots())


def test_the_weight_is_taken_again_when_the_ballot_changes(app: Flask, clock: Clock) -> None:
    small, large = make_tier("Small", monthly=400), make_tier("Large", monthly=1600)
    patron = make_patron(small)
    poll = make_poll(weighting=Weighting.SQRT_AMOUNT)
    a, b, _ = option_ids(poll)
    ballots.cast_vote(poll, patron, [a])
    assert _ballots()[0][2] == 2 * WEIGHT_SCALE  # sqrt(4.00)

    # The patron upgrades: the old subscription ends, a new one starts.
    old = current_subscription(patron.id)
    assert old is not None
    old.status = SubscriptionStatus.CANCELED
    make_subscription(patron, large, created_at=clock.at)
    ballots.cast_vote(poll, patron, [b])
    assert _ballots() == [(poll.id, patron.id, 4 * WEIGHT_SCALE, frozenset({b}))]


def test_repeated_options_count_once(app: Flask, clock: Clock) -> None:
    patron = make_patron()
    poll = make_poll(max_choices=1)
    a = option_ids(poll)[0]
    ballots.cast_vote(poll, patron, [a, a])
    assert _ballots()[0][3] == {a}


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        ([], "Choose at least one topic."),
        (["a", "b", "c"], "You can choose up to 2 topics in this poll."),
        (["a", "other"], "That choice is not one of this poll's topics."),
    ],
)
def test_bad_ballots_are_refused_and_change_nothing(
    app: Flask, clock: Clock, chosen: list[str], message: str
) -> None:
    patron = make_patron()
    poll = make_poll(max_choices=2)
    other = make_poll(("Elsewhere",))
    a, b, c = option_ids(poll)
    ballots.cast_vote(poll, patron, [c])
    db.session.commit()
    before = _ballots()
    ids = {"a": a, "b": b, "c": c, "other": option_ids(other)[0]}

    with pytest.raises(errors.InvalidBallot) as refused:
        ballots.cast_vote(poll, patron, [ids[name] for name in chosen])
    assert refused.value.message == message
    db.session.rollback()
    assert _ballots() == before


@pytest.mark.parametrize(
    ("state", "opens_in", "closes_in", "error"),
    [
        (PollState.DRAFT, -1, 5, errors.PollNotFound),
        (PollState.SCHEDULED, 1, 5, errors.PollNotOpen),
        (PollState.OPEN, -5, -1, errors.PollNotOpen),  # stored open, but its time is up
        (PollState.CLOSED, -5, 5, errors.PollNotOpen),  # closed early by staff
    ],
)
def test_only_open_polls_take_ballots(
    app: Flask,
    clock: Clock,
    state: PollState,
    opens_in: int,
    closes_in: int,
    error: type[errors.VotingError],
) -> None:
    patron = make_patron()
    poll = make_poll(
        state=state,
        opens_at=clock.at + dt.timedelta(days=opens_in),
        closes_at=clock.at + dt.timedelta(days=closes_in),
    )
    with pytest.raises(error):
        ballots.cast_vote(poll, patron, option_ids(poll)[:1])
    assert _ballots() == []


def test_a_lapsed_patron_cannot_vote_or_change_a_vote(app: Flask, clock: Clock) -> None:
    patron = make_patron()
    poll = make_poll()
    a, b, _ = option_ids(poll)
    ballots.cast_vote(poll, patron, [a])
    db.session.commit()
    subscription = current_subscription(patron.id)
    assert subscription is not None
    subscription.status = SubscriptionStatus.CANCELED
    db.session.commit()

    with pytest.raises(errors.NotEligible) as refused:
        ballots.cast_vote(poll, patron, [b])
    assert "lapsed" in refused.value.message
    db.session.rollback()
    # The ballot cast while entitled still counts, unchanged.
    assert _ballots() == [(poll.id, patron.id, WEIGHT_SCALE, frozenset({a}))]
