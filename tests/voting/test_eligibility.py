"""Who may vote: entitled patrons (active, trialing, past_due within grace), of allowed tiers."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask

from supporters.billing.membership import is_entitled
from supporters.billing.models import SubscriptionStatus
from supporters.extensions import db
from supporters.voting import results, services
from supporters.voting.services import Refusal
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
    eligibility = services.check_eligibility(poll, member, clock.at)
    assert eligibility.refusal is refusal
    assert eligibility.may_vote is (refusal is None)
    assert results.count_eligible(poll, clock.at) == (1 if refusal is None else 0)


def test_visitors_who_are_not_signed_in_are_invited_to_sign_in(app: Flask, clock: Clock) -> None:
    eligibility = services.check_eligibility(make_poll(), None, clock.at)
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
        name: services.check_eligibility(poll, member, clock.at).refusal
        for name, member in members.items()
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
        services.check_eligibility(open_to_all, member, clock.at).may_vote
        for member in members.values()
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
