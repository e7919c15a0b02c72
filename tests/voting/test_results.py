"""Results against hand-computed figures: each weighting rule, the cap, ties and turnout."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from flask import Flask

from supporters.billing.models import Interval, SubscriptionStatus
from supporters.extensions import db
from supporters.voting import results
from supporters.voting.ballots import cast_vote
from supporters.voting.clock import observed_state
from supporters.voting.models import WEIGHT_SCALE, Poll, PollState, Weighting
from tests.factories import make_member
from tests.voting.conftest import Clock
from tests.voting.factories import make_patron, make_poll, make_subscription, make_tier, option_ids

M = WEIGHT_SCALE


def _vote(poll: Poll, ballots: list[tuple[object, list[int]]]) -> None:
    for member, chosen in ballots:
        cast_vote(poll, member, chosen)  # type: ignore[arg-type]


def _figures(
    poll: Poll, clock: Clock, state: PollState = PollState.OPEN
) -> dict[str, tuple[Any, ...]]:
    outcome = results.compute_results(poll, state, clock.at)
    return {r.topic.title: (r.ballots, r.weight / M, r.share, r.is_winner) for r in outcome.options}


def test_one_patron_one_vote(app: Flask, clock: Clock) -> None:
    poll = make_poll()
    a, b, c = option_ids(poll)
    _vote(poll, [(make_patron(), [x]) for x in (a, a, a, b, c)])
    for _ in range(3):
        make_patron()  # eligible, did not vote
    make_patron(status=SubscriptionStatus.CANCELED)  # not eligible
    outcome = results.compute_results(poll, PollState.OPEN, clock.at)
    assert (outcome.ballots, outcome.total_weight, outcome.eligible) == (5, Fraction(5 * M), 8)
    assert outcome.turnout == Fraction(5, 8)
    assert results.percent(outcome.turnout) == Decimal("62.5")
    assert _figures(poll, clock) == {
        "Schools": (3, 3, Fraction(3, 5), False),  # no winner while the poll is open
        "Housing": (1, 1, Fraction(1, 5), False),
        "Transport": (1, 1, Fraction(1, 5), False),
    }
    assert _figures(poll, clock, PollState.CLOSED)["Schools"][3] is True


def test_weighted_by_tier(app: Flask, clock: Clock) -> None:
    friend, insider, other = make_tier("Friend"), make_tier("Insider"), make_tier("Other")
    poll = make_poll(weighting=Weighting.TIER, tier_rules=[(friend, True, 1), (insider, True, 3)])
    a, b, c = option_ids(poll)
    custom = make_member()
    make_subscription(custom, amount=1234)
    _vote(
        poll,
        [
            (make_patron(friend), [a]),
            (make_patron(insider), [b]),
            (make_patron(insider), [b]),
            (make_patron(other), [a]),  # a tier without a rule weighs 1
            (custom, [c]),  # so does a custom amount
        ],
    )
    assert _figures(poll, clock) == {
        "Housing": (2, 6, Fraction(6, 9), False),
        "Schools": (2, 2, Fraction(2, 9), False),
        "Transport": (1, 1, Fraction(1, 9), False),
    }
    outcome = results.compute_results(poll, PollState.OPEN, clock.at)
    assert [results.percent(r.share) for r in outcome.options] == [
        Decimal("66.7"),
        Decimal("22.2"),
        Decimal("11.1"),
    ]


def test_weighted_by_the_square_root_of_the_monthly_amount(app: Flask, clock: Clock) -> None:
    poll = make_poll(weighting=Weighting.SQRT_AMOUNT)
    a, b, c = option_ids(poll)
    yearly = make_member()
    make_subscription(yearly, amount=30_000, interval=Interval.YEAR)  # EUR 300 a year: 25 a month
    _vote(
        poll,
        [
            (make_patron(amount=400), [a]),  # sqrt(4) = 2
            (make_patron(amount=900), [b]),  # sqrt(9) = 3
            (make_patron(amount=1600), [a]),  # sqrt(16) = 4
            (yearly, [b]),  # sqrt(25) = 5
            (make_patron(amount=500), [c]),  # sqrt(5) = 2.236067 (rounded down)
        ],
    )
    figures = _figures(poll, clock)
    total = Fraction(14 * M + 2_236_067)
    assert figures == {
        "Housing": (2, 8, 8 * M / total, False),
        "Schools": (2, 6, 6 * M / total, False),
        "Transport": (1, Fraction(2_236_067, M), 2_236_067 / total, False),
    }
    assert results.votes(2_236_067) == Decimal("2.24")


def test_the_cap_on_one_patrons_share(app: Flask, clock: Clock) -> None:
    # A patron giving EUR 3,600 a month (weight 60) against four giving EUR 1 (weight 1 each):
    # uncapped they would hold 60/64 = 93.75%. With a 25% cap, M = 0.25 x (M + 4), M = 4/3.
    poll = make_poll(weighting=Weighting.SQRT_AMOUNT, weight_cap_percent=25)
    a, b, _ = option_ids(poll)
    _vote(poll, [(make_patron(amount=360_000), [a])])
    _vote(poll, [(make_patron(amount=100), [b]) for _ in range(4)])
    outcome = results.compute_results(poll, PollState.CLOSED, clock.at)
    assert outcome.limit == Fraction(4, 3) * M
    assert outcome.capped_ballots == 1
    assert outcome.total_weight == Fraction(16, 3) * M
    assert _figures(poll, clock, PollState.CLOSED) == {
        "Housing": (4, 4, Fraction(3, 4), True),
        "Schools": (1, Fraction(4, 3), Fraction(1, 4), False),
        "Transport": (0, 0, 0, False),
    }

    # The cap applies on top of equal weights only when there are too few voters for it:
    # then every ballot counts the same anyway.
    equal = make_poll(weight_cap_percent=10)
    x, y, _ = option_ids(equal)
    _vote(equal, [(make_patron(), [x]), (make_patron(), [y])])
    assert results.compute_results(equal, PollState.OPEN, clock.at).limit is None


def test_ties_are_shown_as_ties_once_closed(app: Flask, clock: Clock) -> None:
    poll = make_poll()
    a, b, c = option_ids(poll)
    _vote(poll, [(make_patron(), [x]) for x in (a, b, a, b, c)])
    open_ = results.compute_results(poll, PollState.OPEN, clock.at)
    assert open_.winners == [] and not open_.is_tie
    closed = results.compute_results(poll, PollState.CLOSED, clock.at)
    assert closed.is_tie
    assert {r.topic.title for r in closed.winners} == {"Schools", "Housing"}

    empty = make_poll()
    assert results.compute_results(empty, PollState.CLOSED, clock.at).winners == []


def test_several_choices_count_for_each_option(app: Flask, clock: Clock) -> None:
    poll = make_poll(max_choices=2)
    a, b, c = option_ids(poll)
    _vote(poll, [(make_patron(), [a, b]), (make_patron(), [a]), (make_patron(), [c])])
    assert _figures(poll, clock) == {
        "Schools": (2, 2, Fraction(2, 3), False),
        "Housing": (1, 1, Fraction(1, 3), False),
        "Transport": (1, 1, Fraction(1, 3), False),
    }


def test_a_closed_polls_turnout_is_counted_at_its_closing(app: Flask, clock: Clock) -> None:
    poll = make_poll()
    _vote(poll, [(make_patron(), option_ids(poll)[:1])])
    make_patron()
    db.session.commit()
    clock.advance(days=8)  # past the closing time
    state = observed_state(poll, clock.at)
    assert state is PollState.CLOSED
    make_subscription(make_member(), started_at=clock.at)  # joins after the poll closed
    outcome = results.compute_results(poll, state, clock.at)
    assert (outcome.ballots, outcome.eligible) == (1, 2)
    # Staff closing a poll early keep the count of that moment.
    poll.eligible_count = 5
    assert results.compute_results(poll, state, clock.at).eligible == 5
