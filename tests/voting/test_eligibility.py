"""Who may vote: entitled patrons (active, trialing, past_due within grace), of allowed tiers."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask

from supporters.billing.membership import is_entitled, status_at
from supporters.billing.models import SubscriptionStatus
from supporters.extensions import db
from supporters.voting import results
from supporters.voting.eligibility import Refusal, check_eligibility
from tests.factories import make_member
from tests.voting.conftest import Clock
from tests.voting.factories import make_poll, make_subscription, make_tier

S = SubscriptionStatus


@pytest.mark.parametrize(
    ("status", "period_started_days_ago", "refusal"),
    [
        (S.ACTIVE, 10, None),
        (S.TRIALING, 10, None),
        (S.PAST_DUE, 3, None),  # the renewal failed 3 days ago: within the 7-day grace period
        (S.PAST_DUE, 8, Refusal.ON_HOLD),  # grace period over, Stripe still retrying
        (S.CANCELED, 40, Refusal.LAPSED),
        (S.UNPAID, 40, Refusal.ON_HOLD),
        (S.INCOMPLETE_EXPIRED, None, Refusal.LAPSED),
        (S.INCOMPLETE, None, Refusal.PENDING),
        (None, None, Refusal.NOT_PATRON),
    ],
)
def test_eligibility_follows_the_membership_status(
    app: Flask,
    clock: Clock,
    status: SubscriptionStatus | None,
    period_started_days_ago: int | None,
    refusal: Refusal | None,
) -> None:
    member = make_member()
    if status is not None:
        started = (
            clock.at - dt.timedelta(days=period_started_days_ago)
            if period_started_days_ago
            else None
        )
        make_subscription(
            member,
            status=status,
            current_period_start=started,
            current_period_end=started + dt.timedelta(days=30) if started else None,
        )
    poll = make_poll()
    eligibility = check_eligibility(poll, member, clock.at)
    assert eligibility.refusal is refusal
    assert eligibility.may_vote is (refusal is None)
    assert results.count_eligible(poll, clock.at) == (1 if refusal is None else 0)


def test_visitors_who_are_not_signed_in_are_invited_to_sign_in(app: Flask, clock: Clock) -> None:
    eligibility = check_eligibility(make_poll(), None, clock.at)
    assert eligibility.refusal is Refusal.SIGNED_OUT and eligibility.message


def test_a_poll_restricted_to_tiers_admits_only_their_patrons(app: Flask, clock: Clock) -> None:
    friend, insider, other = make_tier("Friend"), make_tier("Insider"), make_tier("Other")
    poll = make_poll(
        is_restricted_to_tiers=True, tier_rules=[(friend, False, 1), (insider, True, 1)]
    )
    members = {}
    for name, tier in (
        ("friend", friend),
        ("insider", insider),
        ("other", other),
        ("custom", None),
    ):
        members[name] = make_member()
        make_subscription(members[name], tier, amount=None if tier else 1234)
    refusals = {
        name: check_eligibility(poll, member, clock.at).refusal for name, member in members.items()
    }
    assert refusals == {
        "friend": Refusal.TIER,  # a rule that says no
        "insider": None,
        "other": Refusal.TIER,  # no rule for the tier
        "custom": Refusal.TIER,  # a custom amount has no tier
    }
    assert results.count_eligible(poll, clock.at) == 1

    open_to_all = make_poll(tier_rules=[(friend, False, 1)])
    assert all(
        check_eligibility(open_to_all, member, clock.at).may_vote for member in members.values()
    )
    assert results.count_eligible(open_to_all, clock.at) == 4


def test_the_current_subscription_decides_as_it_does_for_billing(app: Flask, clock: Clock) -> None:
    """The SQL count of eligible patrons agrees with is_entitled() member by member."""
    cases = [
        [S.CANCELED, S.ACTIVE],  # came back: entitled once
        [S.ACTIVE, S.INCOMPLETE],  # a newer live one still pending: not entitled (billing's rule)
        [S.CANCELED, S.CANCELED],
        [S.PAST_DUE],
        [S.TRIALING],
        [],
    ]
    members = []
    for statuses in cases:
        member = make_member()
        for i, status in enumerate(statuses):
            make_subscription(
                member,
                status=status,
                created_at=clock.at - dt.timedelta(days=100 - i),
                current_period_start=clock.at - dt.timedelta(days=2),
                current_period_end=clock.at + dt.timedelta(days=28),
            )
        members.append(member)
    db.session.flush()
    expected = sum(is_entitled(member.id, clock.at) for member in members)
    assert expected == 3
    assert results.count_eligible(make_poll(), clock.at) == expected


# (status, started, period start, period end, ended): days from the poll's closing, None unset.
Row = tuple[SubscriptionStatus, int, int | None, int | None, int | None]


@pytest.mark.parametrize(
    ("rows", "entitled"),
    [
        ([(S.ACTIVE, -60, -5, 25, None)], True),
        ([(S.ACTIVE, 1, 1, 31, None)], False),  # joined after the closing
        ([(S.CANCELED, -60, -20, 10, 10)], True),  # cancelled at the end of a paid period, later
        ([(S.CANCELED, -60, -40, -1, -1)], False),  # cancelled before
        ([(S.PAST_DUE, -60, 5, 35, None)], True),  # the renewal failed after the closing
        ([(S.PAST_DUE, -60, -3, 27, None)], True),  # failed 3 days before: in grace then
        ([(S.PAST_DUE, -60, -20, 10, None)], False),  # grace over by then
        ([(S.UNPAID, -60, 5, 35, None)], True),
        ([(S.UNPAID, -60, -3, 27, None)], False),  # unpaid now: when it got there is unknown
        ([(S.CANCELED, -60, -3, 27, 10)], True),  # Stripe gave up after the closing
        ([(S.CANCELED, -60, -20, 10, 5)], False),  # ... but the grace was over by then
        ([(S.INCOMPLETE, -2, None, None, None)], False),
        ([(S.INCOMPLETE_EXPIRED, -2, None, None, 1)], False),
        ([(S.CANCELED, -90, -60, -30, -30), (S.ACTIVE, -10, -10, 20, None)], True),
        ([(S.ACTIVE, -60, -5, 25, None), (S.INCOMPLETE, -5, None, None, None)], False),
        ([(S.ACTIVE, -60, -5, 25, None), (S.INCOMPLETE, 5, None, None, None)], True),
    ],
)
def test_who_could_vote_when_a_poll_closed_is_read_from_the_history(
    app: Flask, clock: Clock, rows: list[Row], entitled: bool
) -> None:
    """A month after the closing, the count at the closing sees memberships as they were then."""
    closing = clock.at - dt.timedelta(days=30)

    def day(offset: int | None) -> dt.datetime | None:
        return None if offset is None else closing + dt.timedelta(days=offset)

    member = make_member()
    subscriptions = [
        make_subscription(
            member,
            status=status,
            started_at=day(started),
            created_at=day(started),
            current_period_start=day(period_start),
            current_period_end=day(period_end),
            ended_at=day(ended),
        )
        for status, started, period_start, period_end, ended in rows
    ]
    poll = make_poll(opens_at=closing - dt.timedelta(days=7), closes_at=closing)
    assert results.count_eligible(poll, closing) == int(entitled)
    # The SQL count and billing's own reading of the row agree.
    if len(rows) == 1:
        assert status_at(subscriptions[0], closing).is_entitled is entitled
